"""The protocol: OAuth 2.0 and OpenID Connect, knowing nothing of how users prove who they are.

Other packages use :mod:`.public` and :mod:`.protector` only; the rest is internal.
"""

from __future__ import annotations

from flask import Flask

from .. import errors
from ..sessions import service as sessions
from . import direct, documents, protector
from .ciba import CIBAGrant
from .discovery import metadata_json
from .grants import OpenIDCode
from .keystore import KeyStore
from .models import USER_SCOPES
from .server import build_server
from .tokens import TokenService, revoke_session_tokens


def init_app(app: Flask) -> None:
    keys = KeyStore(app)
    app.extensions["sso_keys"] = keys
    app.extensions["sso_tokens"] = TokenService(keys, app.config)

    server = build_server()
    server.register_grant(CIBAGrant, [OpenIDCode()])
    app.extensions["sso_authorization_server"] = server

    app.config.setdefault("SCOPES_SUPPORTED",
                          [*USER_SCOPES, *app.extensions.get("sso_extra_scopes", [])])
    sessions.on_end(app, lambda session, origin: revoke_session_tokens(session.id,
                                                                       origin=origin))
    protector.init_app(app)
    from . import singlelogout  # noqa: PLC0415

    singlelogout.init_app(app)

    from .views import JSON_ENDPOINTS, bp  # noqa: PLC0415

    app.register_blueprint(bp)
    errors.speaks_json(app, JSON_ENDPOINTS)
    app.extensions["sso_discovery"] = metadata_json(app)
    documents.init_app(app)
    direct.init_app(app)
