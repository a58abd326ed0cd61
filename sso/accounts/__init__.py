"""Users, passwords and roles per app; the account lifecycle (invitation, activation,
registration, reset, lockout) and the ``password_change`` step of the sign-in flow."""

from __future__ import annotations

from datetime import datetime

from flask import Flask, current_app

from ..flow import Interaction, Request, register_step
from ..sessions.models import SSOSession

PASSWORD_CHANGE_STEP_ORDER = 20


def password_change_step(request: Request, session: SSOSession | None,
                         now: datetime) -> Interaction | None:
    """Step 2 (DESIGN.md §3): an initial or expired password is replaced before any code."""
    from . import policy  # noqa: PLC0415

    if session is None:
        return None
    user = session.user
    if user.must_change_password or policy.expired(user, current_app.config, now):
        return Interaction("accounts.change_password", "interaction_required",
                           "The user must change their password.")
    return None


def init_app(app: Flask) -> None:
    from .views import bp  # noqa: PLC0415

    app.register_blueprint(bp)
    register_step(PASSWORD_CHANGE_STEP_ORDER, "password_change", password_change_step)
