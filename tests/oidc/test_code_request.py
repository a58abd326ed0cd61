"""The authorization request's checks (``grants.code_request``) against the grant that made
them before (Authlib's code grant with its OpenID and PKCE extensions, fitted as the provider
fitted it until issue 15): for every request of a matrix of clients and parameters, the same
client, redirect URI and scopes, or the same error with the same description, sent back to
the same redirect URI or to none."""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

import pytest
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.core.grants.util import is_openid_scope
from flask import Flask
from werkzeug.datastructures import MultiDict

from sso.oidc import grants as our_grants
from sso.oidc.grants import ALL_AUTH_METHODS
from sso.oidc.server import ProtocolRequest, build_server


class _InOrder(dict[Any, None]):
    """A set that iterates in the order of its additions."""

    def add(self, item: Any) -> None:
        self[item] = None


class _GrantBefore(grants.AuthorizationCodeGrant):
    """``grants.AuthorizationCodeGrant`` as the provider had it before issue 15, its hooks
    run in the order they were registered (Authlib keeps them in a set, whose order follows
    the objects' addresses: a request failing two hooks' checks got either error)."""

    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH_METHODS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hooks = defaultdict(_InOrder)

    @staticmethod
    def validate_authorization_redirect_uri(request: Any, client: Any) -> str:
        requested = request.payload.redirect_uri
        if requested:
            if not client.check_redirect_uri(requested):
                raise InvalidRequestError("'redirect_uri' is not registered for this client.")
            return requested  # type: ignore[no-any-return]
        default = client.get_default_redirect_uri()
        if not default:
            raise InvalidRequestError("Missing 'redirect_uri'.")
        return default  # type: ignore[no-any-return]


class _S256Before(CodeChallenge):
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        request = grant.request
        data = request.payload.data
        challenge, method = data.get("code_challenge"), data.get("code_challenge_method")
        if request.client.is_public and not challenge:
            raise InvalidRequestError("Public clients must use PKCE: send 'code_challenge'.")
        if challenge and method != "S256":
            raise InvalidRequestError("Only 'code_challenge_method=S256' is supported.")
        super().validate_code_challenge(grant, redirect_uri)


class _OpenIDBefore(OpenIDCode):
    def exists_nonce(self, nonce: str, request: Any) -> bool:
        if len(nonce) > 255:
            raise InvalidRequestError("'nonce' is too long.")
        return False

    def __call__(self, grant: Any) -> None:
        if is_openid_scope(grant.request.payload.scope):
            grant.register_hook("after_validate_authorization_request_payload",
                                self.validate_openid_authorization_request)


def _outcome(decide: Any) -> tuple[Any, ...]:
    try:
        client_id, redirect_uri, scope = decide()
    except OAuth2Error as error:
        return ("refused", type(error).__name__, error.error, error.description,
                error.redirect_uri)
    return ("accepted", client_id, redirect_uri, scope)


CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

PARAMETERS: dict[str, list[str | None]] = {
    "redirect_uri": [None, "REGISTERED", "https://evil.example.com/cb",
                     "https://erp.example.com/callback/"],
    "scope": [None, "", "openid", "openid profile email", "frobnicate", "profile",
              "openid offline_access openid"],
    "nonce": [None, "", "n-0S6_WzA2Mj", "n" * 256],
    "code_challenge": [None, CHALLENGE, "too-short"],
    "code_challenge_method": [None, "S256", "plain"],
}


@pytest.fixture
def clients(app: Flask, make_client: Any) -> dict[str, Any]:
    return {
        "confidential": make_client("ERP", scope="openid profile email offline_access"),
        "public": make_client("Mobile", public=True, grant_types=["authorization_code"],
                              redirect_uris=["https://erp.example.com/callback"]),
        "two redirect URIs": make_client("CRM", redirect_uris=[
            "https://erp.example.com/callback", "https://crm.example.com/cb"]),
        "no code grant": make_client("Batch", grant_types=["client_credentials"],
                                     scope="reports",
                                     redirect_uris=["https://erp.example.com/callback"]),
    }


def test_the_checks_answer_as_the_grant_before_them(app: Flask,
                                                    clients: dict[str, Any]) -> None:
    server = build_server()
    server.register_grant(_GrantBefore, [_OpenIDBefore(require_nonce=False),
                                         _S256Before(required=True)])
    client_ids = [*(c.client_id for c in clients.values()), "no-such-client", "", None]
    compared = refused = 0
    with app.test_request_context("/authorize"):
        for client_id in client_ids:
            for values in itertools.product(*PARAMETERS.values()):
                params = MultiDict({"response_type": "code"})
                if client_id is not None:
                    params["client_id"] = client_id
                for name, value in zip(PARAMETERS, values, strict=True):
                    if value == "REGISTERED":
                        value = "https://erp.example.com/callback"
                    if value is not None:
                        params[name] = value

                def before(params: MultiDict[str, str] = params) -> tuple[Any, ...]:
                    grant = server.get_consent_grant(
                        request=ProtocolRequest("GET", None, {}, params, MultiDict()),
                        end_user=None)
                    return grant.client.client_id, grant.redirect_uri, grant.request.scope

                def ours(params: MultiDict[str, str] = params) -> tuple[Any, ...]:
                    request = our_grants.code_request(params)
                    return request.client.client_id, request.redirect_uri, request.scope

                expected = _outcome(before)
                assert _outcome(ours) == expected, dict(params)
                compared += 1
                refused += expected[0] == "refused"
    # The matrix reaches both answers, and every check's error.
    assert compared == len(client_ids) * 4 * 7 * 4 * 3 * 3
    assert 0 < refused < compared
