"""The demo call centre's ID-token check (``sso.demo.ciba.verify_id_token``) against the live
provider's JWKS: a token of the provider for the app passes; another audience, another issuer,
an expired token and a token signed by a key the provider does not publish are refused."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

from sso.demo.ciba import IDTokenRejected, verify_id_token
from tests.conftest import LiveProvider


def _sign(live: LiveProvider, **claims: Any) -> str:
    from sso.oidc.keys import encode_jws

    now = int(time.time())
    body = {"iss": live.url, "aud": "crm", "sub": "subject-1", "iat": now, "exp": now + 300,
            **claims}
    with live.app.app_context():
        key = live.app.extensions["sso_keys"].active("RS256")
        return encode_jws(key, body, typ="JWT")


def _jwks(live: LiveProvider) -> Any:
    return lambda force: requests.get(f"{live.url}/jwks.json", timeout=10).json()


def test_the_call_centre_accepts_only_the_providers_id_tokens_for_it(
        live_provider: LiveProvider) -> None:
    jwks = _jwks(live_provider)
    claims = verify_id_token(_sign(live_provider), jwks, live_provider.url, "crm")
    assert claims["sub"] == "subject-1"
    assert verify_id_token(_sign(live_provider, aud=["crm", "x"]), jwks, live_provider.url,
                           "crm")["aud"] == ["crm", "x"]
    refused = [
        _sign(live_provider, aud="erp"),
        _sign(live_provider, iss="http://elsewhere.example"),
        _sign(live_provider, exp=int(time.time()) - 3600),
        jwt.encode({"alg": "RS256", "kid": "stranger"},
                   {"iss": live_provider.url, "aud": "crm", "sub": "s",
                    "exp": int(time.time()) + 300},
                   RSAKey.generate_key(2048, parameters={"kid": "stranger"})),
        "not a token",
    ]
    for token in refused:
        with pytest.raises(IDTokenRejected):
            verify_id_token(token, jwks, live_provider.url, "crm")
