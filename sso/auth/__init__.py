"""The sign-in pages: password sign-in, the account page, the language switch."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask


@dataclass(frozen=True)
class SignInMethod:
    """Another way to sign in, shown as a tab beside the password form (QR code, ...)."""

    endpoint: str
    label: str


def register_sign_in_method(app: Flask, endpoint: str, label: str) -> None:
    """Add a tab to the sign-in page; ``endpoint`` gets the ``flow`` id as a query argument."""
    methods = app.extensions.setdefault("sso_sign_in_methods", [])
    if all(m.endpoint != endpoint for m in methods):
        methods.append(SignInMethod(endpoint, label))


def init_app(app: Flask) -> None:
    from .views import bp  # noqa: PLC0415

    app.register_blueprint(bp)
