"""The admin console at ``/admin``: server-rendered pages over :mod:`sso.admin.operations`.

Views parse the form, call one operation and render; the rules (who may do what, what is
valid) live in the operations and the services under them. See docs/admin.md.
"""

from __future__ import annotations

from flask import Flask

#: Endpoints that take an uploaded file, and how large it may be (the rest of the provider
#: keeps MAX_REQUEST_BYTES).
UPLOADS = {"admin.users_import_check": 5 * 1024 * 1024 + 64 * 1024}


def _upload_limit() -> None:
    from flask import request  # noqa: PLC0415

    limit = UPLOADS.get(request.endpoint or "")
    if limit is not None:
        request.max_content_length = limit


def init_app(app: Flask) -> None:
    from . import access, apps, audit, groups, home, users  # noqa: F401, PLC0415
    from .blueprint import bp  # noqa: PLC0415

    app.register_blueprint(bp)
    from .. import registration  # noqa: PLC0415

    registration.init_app(app)
    from .. import importer  # noqa: PLC0415

    importer.init_app(app)
    # Before the CSRF check, which reads the form under the provider's small limit.
    app.before_request_funcs.setdefault(None, []).insert(0, _upload_limit)
