"""The admin console at ``/admin``: server-rendered pages over :mod:`sso.admin.operations`.

Views parse the form, call one operation and render; the rules (who may do what, what is
valid) live in the operations and the services under them. See docs/admin.md.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import access, apps, audit, home, users  # noqa: F401, PLC0415
    from .blueprint import bp  # noqa: PLC0415

    app.register_blueprint(bp)
