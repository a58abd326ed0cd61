"""The SSO session: who, when and how a browser signed in (each proof and its time)."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from .service import init_app as init_service  # noqa: PLC0415

    init_service(app)
