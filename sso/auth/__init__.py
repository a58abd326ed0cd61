"""Password sign-in (the first sign-in method), the account page, the language switch."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from .views import bp  # noqa: PLC0415

    app.register_blueprint(bp)
