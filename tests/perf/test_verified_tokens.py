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


def _forget_verified(app: Flask) -> None:
    """Empty this worker's cache: as if another worker had issued the tokens."""
    with app.app_context():
        from sso.oidc.grants import token_service

        token_service().verified._entries.clear()


def test_a_token_is_verified_once_per_worker(flow: Flow, tokens: dict[str, Any], app: Flask,
                                             verifications: list[bytes]) -> None:
    _forget_verified(app)
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


def test_only_the_exact_verified_token_hits(flow: Flow, tokens: dict[str, Any], app: Flask,
                                            verifications: list[bytes]) -> None:
    _forget_verified(app)
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


def test_a_users_token_is_known_to_the_worker_that_signed_it(
        flow: Flow, tokens: dict[str, Any], app: Flask, make_client: Any,
        verifications: list[bytes]) -> None:
    """The worker that issues a user's access token keeps it as verified, with the claims its
    verification would give; a client's own token is verified on its first use."""
    from sso.oidc.grants import token_service
    from sso.oidc.keys import decode_jws

    token = tokens["access_token"]
    assert _userinfo(flow, token) == 200
    assert _introspect(flow, token)["active"] is True
    assert verifications == []
    with app.app_context():
        service = token_service()
        kept = service.verified.get(service.keys, token)
        assert kept is not None and kept == decode_jws(service.keys, token, typ="at+jwt")
        assert kept["sub"] != kept["client_id"]
    refreshed = flow.http.post("/token", headers=basic(flow.app_client), data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.get_json()
    with app.app_context():
        token = refreshed.get_json()["access_token"]
        kept = service.verified.get(service.keys, token)
        assert kept is not None and kept == decode_jws(service.keys, token, typ="at+jwt")
    del verifications[:]  # decode_jws's own checks, just now

    batch = make_client("Batch", grant_types=["client_credentials"], scope="api")
    pair = base64.b64encode(f"{batch.client_id}:{batch.secret}".encode()).decode()
    headers = {"Authorization": "Basic " + pair}
    own = flow.http.post("/token", data={"grant_type": "client_credentials"},
                         headers=headers)
    assert own.status_code == 200, own.get_json()
    introspected = flow.http.post("/introspect", data={"token": own.get_json()["access_token"]},
                                  headers=headers)
    assert introspected.get_json()["active"] is True
    assert len(verifications) == 1
