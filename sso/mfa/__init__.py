"""Two-step verification: TOTP with a QR enrolment, recovery codes, per-app step-up; the
``mfa`` step of the sign-in flow (a row of ``sso.signin``)."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from .views import account_context, bp  # noqa: PLC0415

    _check_keys(app)
    app.register_blueprint(bp)
    app.jinja_env.globals["mfa_account"] = account_context


def _check_keys(app: Flask) -> None:
    from ..config import ConfigError  # noqa: PLC0415
    from .crypto import key_materials  # noqa: PLC0415

    try:
        keys = key_materials(app.config)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    if any(len(key) < 32 for key in keys):
        raise ConfigError("each key in SSO_MFA_ENCRYPTION_KEYS must be at least 32 characters")
