"""Two-step verification: TOTP with a QR enrolment, recovery codes, per-app step-up."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from ..flow import register_step  # noqa: PLC0415
    from . import policy  # noqa: PLC0415
    from .views import account_context, bp  # noqa: PLC0415

    app.register_blueprint(bp)
    register_step(policy.STEP_ORDER, policy.STEP_NAME, policy.step)
    app.jinja_env.globals["mfa_account"] = account_context
