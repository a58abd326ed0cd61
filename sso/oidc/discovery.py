"""Provider metadata (OpenID Connect Discovery 1.0, RFC 8414), built once per app."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, url_for

from ..sessions.models import ACR_VALUES
from .claims import CLAIMS_SUPPORTED
from .keys import ALGORITHMS


def metadata(app: Flask) -> dict[str, Any]:
    issuer = app.config["ISSUER"]
    with app.test_request_context(base_url=issuer):
        def url(endpoint: str) -> str:
            return issuer + url_for(endpoint)

        return {
            "issuer": issuer,
            "authorization_endpoint": url("oidc.authorize"),
            "token_endpoint": url("oidc.token"),
            "userinfo_endpoint": url("oidc.userinfo"),
            "jwks_uri": url("oidc.jwks"),
            "end_session_endpoint": url("oidc.end_session"),
            "introspection_endpoint": url("oidc.introspect"),
            "revocation_endpoint": url("oidc.revoke"),
            "scopes_supported": sorted(app.config["SCOPES_SUPPORTED"]),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token",
                                      "client_credentials",
                                      "urn:openid:params:grant-type:ciba"],
            "backchannel_authentication_endpoint": url("oidc.backchannel_authentication"),
            "backchannel_token_delivery_modes_supported": ["poll", "ping"],
            "backchannel_user_code_parameter_supported": False,
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": list(ALGORITHMS),
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic",
                                                              "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic",
                                                           "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": CLAIMS_SUPPORTED,
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "acr_values_supported": list(ACR_VALUES),
            "prompt_values_supported": ["none", "login", "consent", "select_account"],
            "ui_locales_supported": list(app.config["LANGUAGES"]),
            "claims_locales_supported": list(app.config["LANGUAGES"]),
            "authorization_response_iss_parameter_supported": True,
            "frontchannel_logout_supported": True,
            "frontchannel_logout_session_supported": True,
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            # RFC 7591 §3 / RFC 8414 §2, when the admin package serves it.
            **({"registration_endpoint": url("registration.register")}
               if "registration.register" in app.view_functions else {}),
        }


def metadata_json(app: Flask) -> bytes:
    return json.dumps(metadata(app), separators=(",", ":")).encode()
