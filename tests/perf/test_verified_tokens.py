"""The per-worker cache of verified access tokens (issue 15) skips the signature on a token's
next use and nothing else: revocation, the user's status, expiry and the key's presence are
still checked on every use, and only the exact verified token hits."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from flask import Flask

from sso.oidc.keys import SigningKey
from tests.conftest import Flow, basic


@pytest.fixture
def tokens(flow: Flow) -> dict[str, Any]:
    response = flow.token(flow.authorize()["code"])
    assert response.status_code == 200
    return response.get_json()  # type: ignore[no-any-return]


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every signature the provider verifies (the real check still runs)."""
    seen: list[bytes] = []
    real = SigningKey.verify

    def counted(self: SigningKey, signing_input: bytes, signature: bytes) -> bool:
        seen.append(signing_input)
        return real(self, signing_input, signature)

    monkeypatch.setattr(SigningKey, "verify", counted)
    return seen


def _introspect(flow: Flow, token: str) -> dict[str, Any]:
    response = flow.http.post("/introspect", data={"token": token},
                              headers=basic(flow.app_client))
    assert response.status_code == 200
    return response.get_json()  # type: ignore[no-any-return]


def _userinfo(flow: Flow, token: str) -> int:
    return flow.http.get("/userinfo", headers={"Authorization": f"Bearer {token}"}).status_code


def test_a_token_is_verified_once_per_worker(flow: Flow, tokens: dict[str, Any],
                                             verifications: list[bytes]) -> None:
    token = tokens["access_token"]
    assert _introspect(flow, token)["active"] is True
    assert _userinfo(flow, token) == 200
    assert _introspect(flow, token)["active"] is True
    assert len(verifications) == 1


def test_revocation_still_applies_to_a_verified_token(flow: Flow,
                                                      tokens: dict[str, Any]) -> None:
    token = tokens["access_token"]
    assert _introspect(flow, token)["active"] is True
    revoked = flow.http.post("/revoke", data={"token": token}, headers=basic(flow.app_client))
    assert revoked.status_code == 200
    assert _introspect(flow, token) == {"active": False}
    assert _userinfo(flow, token) == 401


def test_a_disabled_user_loses_a_verified_token(flow: Flow, tokens: dict[str, Any],
                                                app: Flask) -> None:
    token = tokens["access_token"]
    assert _userinfo(flow, token) == 200
    with app.app_context():
        from sso.extensions import db
        from sso.users.service import find_by_login

        find_by_login("alice").status = "disabled"
        db.session.commit()
    assert _userinfo(flow, token) == 401
    assert _introspect(flow, token) == {"active": False}


def test_only_the_exact_verified_token_hits(flow: Flow, tokens: dict[str, Any],
                                            verifications: list[bytes]) -> None:
    token = tokens["access_token"]
    assert _introspect(flow, token)["active"] is True
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    assert _introspect(flow, forged) == {"active": False}
    assert _userinfo(flow, forged) == 401
    assert len(verifications) == 3  # the forged one was checked each time, and failed


def test_a_token_whose_key_left_the_store_is_refused(flow: Flow, tokens: dict[str, Any],
                                                     app: Flask) -> None:
    token = tokens["access_token"]
    assert _introspect(flow, token)["active"] is True
    store = app.extensions["sso_keys"]
    store.refresh()
    kid = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"]
    removed = store._keys.pop(kid)  # the key that signed this token
    try:
        assert _introspect(flow, token) == {"active": False}
        assert _userinfo(flow, token) == 401
    finally:
        store._keys[kid] = removed


def test_the_cache_is_bounded(app: Flask) -> None:
    from sso.oidc.tokens import VerifiedTokens

    cache = VerifiedTokens(3)
    header = "eyJraWQiOiJrIn0"  # {"kid":"k"}
    for n in range(5):
        cache.put(f"{header}.{n}.sig", {"n": n})
    assert list(cache._entries) == [f"{header}.{n}.sig" for n in (2, 3, 4)]
