"""The user's own account pages beyond the profile: where they are signed in (and ending
it), the apps they use (and taking back what they gave them), their recent activity, and the
new-device alert."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from ..sessions import devices  # noqa: PLC0415
    from .profile import bp as profile_bp  # noqa: PLC0415
    from .views import bp, mail_new_device  # noqa: PLC0415

    app.register_blueprint(bp)
    app.register_blueprint(profile_bp)
    devices.on_new_device(app, mail_new_device)
