"""``bench/lean_floor.py``, the Python floor of the code flow and refresh, keeps the guarantees
its figures are compared on: a floor that skipped a check would measure less than the work.

On SQLite, and on PostgreSQL each way it runs there (the fewest round trips, the default; a
statement per step, ``LEAN_STEPS=1``; a statement per step with the last writes sent with the
COMMIT, ``LEAN_STEPS=tail``)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from werkzeug.test import Client

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import lean_floor  # noqa: E402
import scratch_database  # noqa: E402

from tests.conftest import _pg_admin_url, _pg_available  # noqa: E402

ISSUER = "http://lean.test"


@pytest.fixture(params=["sqlite", "postgresql", "postgresql-steps", "postgresql-tail"])
def lean(request: pytest.FixtureRequest, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Client, dict[str, str], Any]]:
    if request.param == "sqlite":
        url: str | None = f"sqlite:///{tmp_path / 'lean.sqlite3'}"
    elif not _pg_available():
        pytest.skip("PostgreSQL does not answer")
    else:
        url = _pg_admin_url()
    monkeypatch.setenv("LEAN_STEPS", {"postgresql-steps": "1", "postgresql-tail": "tail"}.get(
        request.param, "0"))
    with scratch_database.fresh_database(url, "sso_lean") as database:
        assert database is not None
        seed = lean_floor.seed(database, tmp_path / "keys")
        store = lean_floor.Database(database)
        assert store.fewest is (request.param == "postgresql")
        assert store.tail is (request.param == "postgresql-tail")
        yield Client(lean_floor.Lean(ISSUER, store, tmp_path / "keys")), seed, store
        while not store.idle.empty():
            store.idle.get_nowait().close()


def _basic(seed: dict[str, str]) -> dict[str, str]:
    pair = f"{seed['client_id']}:{seed['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def _authorize(client: Client, seed: dict[str, str], verifier: str, nonce: str,
               signed_in: bool = True) -> Any:
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = urlencode({"response_type": "code", "client_id": seed["client_id"],
                       "redirect_uri": lean_floor.REDIRECT_URI, "scope": "openid profile",
                       "code_challenge": challenge.rstrip(b"=").decode(),
                       "code_challenge_method": "S256", "state": "s1", "nonce": nonce})
    name, _, value = seed["cookie"].partition("=")
    if signed_in:
        client.set_cookie(name, value)
    else:
        client.delete_cookie(name)
    return client.get(f"/authorize?{query}")


def _exchange(client: Client, seed: dict[str, str], code: str, verifier: str) -> Any:
    return client.post("/token", headers=_basic(seed), data={
        "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
        "redirect_uri": lean_floor.REDIRECT_URI})


def _refresh(client: Client, seed: dict[str, str], token: str) -> Any:
    return client.post("/token", headers=_basic(seed),
                       data={"grant_type": "refresh_token", "refresh_token": token})


def _flow(client: Client, seed: dict[str, str]) -> tuple[str, dict[str, Any]]:
    verifier = secrets.token_urlsafe(48)
    answer = _authorize(client, seed, verifier, secrets.token_urlsafe(8))
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    query = parse_qs(location.query)
    assert location._replace(query="").geturl() == lean_floor.REDIRECT_URI
    assert query["state"] == ["s1"] and query["iss"] == [ISSUER]
    code = query["code"][0]
    tokens = _exchange(client, seed, code, verifier)
    assert tokens.status_code == 200, tokens.get_data(as_text=True)
    assert tokens.headers["Cache-Control"] == "no-store"
    return code, tokens.get_json()


def test_a_flow_answers_tokens_and_userinfo_and_writes_its_audit_rows(lean: Any) -> None:
    client, seed, store = lean
    _code, tokens = _flow(client, seed)
    header, payload, _ = tokens["id_token"].split(".")
    claims = lean_floor.json.loads(lean_floor._b64decode(payload))
    assert claims["iss"] == ISSUER and claims["aud"] == seed["client_id"]
    assert claims["sub"] == "s-bench" and "auth_time" in claims and claims["sid"] == "s1"
    me = client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200 and me.get_json()["sub"] == "s-bench"
    events = sorted(row[0] for row in store.read("SELECT event FROM audit_events", ()))
    assert events == ["authorize.code", "token.issue"]


def test_a_code_is_spent_once_and_only_with_its_verifier(lean: Any) -> None:
    client, seed, _ = lean
    verifier = secrets.token_urlsafe(48)
    location = _authorize(client, seed, verifier, "n-1").headers["Location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    assert _exchange(client, seed, code, "not-the-verifier" + "x" * 40).status_code == 400
    assert _exchange(client, seed, code, verifier).status_code == 200
    assert _exchange(client, seed, code, verifier).get_json() == {"error": "invalid_grant"}


def test_a_nonce_is_taken_once_and_a_session_is_needed(lean: Any) -> None:
    client, seed, store = lean
    assert _authorize(client, seed, secrets.token_urlsafe(48), "n-2").status_code == 302
    assert _authorize(client, seed, secrets.token_urlsafe(48), "n-2").status_code == 400
    assert _authorize(client, seed, secrets.token_urlsafe(48), "n-3",
                      signed_in=False).status_code == 401
    store.transaction(lambda execute: execute(
        "UPDATE sso_sessions SET ended_at = {p}", (lean_floor._at(0),)))
    answer = _authorize(client, seed, secrets.token_urlsafe(48), "n-3")
    assert answer.status_code == 401 and answer.get_json() == {"error": "login_required"}


def test_a_refresh_token_rotates_and_is_spent_once(lean: Any) -> None:
    client, seed, store = lean
    _code, tokens = _flow(client, seed)
    first = tokens["refresh_token"]
    rotated = _refresh(client, seed, first)
    assert rotated.status_code == 200
    assert rotated.get_json()["refresh_token"] != first
    assert _refresh(client, seed, first).status_code == 400
    assert _refresh(client, seed, rotated.get_json()["refresh_token"]).status_code == 200
    events = [row[0] for row in store.read("SELECT event FROM audit_events", ())]
    assert events.count("token.refresh") == 2


def test_a_wrong_secret_or_a_disabled_user_is_refused(lean: Any) -> None:
    client, seed, store = lean
    _code, tokens = _flow(client, seed)
    wrong = {**seed, "client_secret": "not-the-secret"}
    assert _refresh(client, wrong, tokens["refresh_token"]).status_code == 401
    store.transaction(lambda execute: execute("UPDATE users SET status = 'disabled'", ()))
    assert _refresh(client, seed, tokens["refresh_token"]).status_code == 400
    me = client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 401
