"""Passwords and the account lifecycle (invitation, activation, registration, reset,
lockout), and the ``password_change`` step of the sign-in flow."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from ..flow import register_step  # noqa: PLC0415
    from .captcha_views import bp as captcha_bp  # noqa: PLC0415
    from .step import PASSWORD_CHANGE_STEP_ORDER, password_change_step  # noqa: PLC0415
    from .views import bp  # noqa: PLC0415

    app.register_blueprint(bp)
    app.register_blueprint(captcha_bp)
    register_step(PASSWORD_CHANGE_STEP_ORDER, "password_change", password_change_step)
