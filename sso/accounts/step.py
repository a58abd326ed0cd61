"""The ``password_change`` step of the sign-in flow (DESIGN.md §3, step 2)."""

from __future__ import annotations

from datetime import datetime

from flask import current_app

from ..flow import Interaction, Request
from ..sessions.models import SSOSession
from . import policy


def password_change_step(request: Request, session: SSOSession | None,
                         now: datetime) -> Interaction | None:
    """An initial or expired password is replaced before any app gets a code."""
    if session is None:
        return None
    user = session.user
    if user.must_change_password or policy.expired(user, current_app.config, now):
        return Interaction("accounts.change_password", "interaction_required",
                           "The user must change their password.")
    return None
