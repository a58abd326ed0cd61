"""Administration of the provider: users, clients, roles, keys, activation in apps, MFA and QR
policies. ``service`` holds what an admin does, as functions; ``cli`` is the ``sso`` admin
commands on top of it, and the admin console will be another front on the same functions."""

from __future__ import annotations


class AdminError(Exception):
    """What the admin asked cannot be done; the message says why, ready to show."""
