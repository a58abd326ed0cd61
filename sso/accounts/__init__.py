"""Passwords and the account lifecycle (invitation, activation, registration, reset,
lockout), and the ``password_change`` step of the sign-in flow (a row of ``sso.signin``)."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from .captcha_views import bp as captcha_bp  # noqa: PLC0415
    from .views import bp  # noqa: PLC0415

    app.register_blueprint(bp)
    app.register_blueprint(captcha_bp)
