"""Refresh tokens: rotation, reuse detection, scope rules, session binding."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.conftest import Flow, basic, csrf_of


def _refresh(flow: Flow, token: str, **extra: str) -> Any:
    return flow.http.post("/token", data={"grant_type": "refresh_token", "refresh_token": token,
                                          **extra}, headers=basic(flow.app_client))


@pytest.fixture
def tokens(flow: Flow) -> dict[str, Any]:
    return flow.token(flow.authorize()["code"]).get_json()  # type: ignore[no-any-return]


def test_refresh_rotates_and_returns_a_new_id_token(flow: Flow, tokens: dict[str, Any],
                                                    app: Any) -> None:
    response = _refresh(flow, tokens["refresh_token"])
    assert response.status_code == 200
    body = response.get_json()
    assert body["refresh_token"] != tokens["refresh_token"]
    assert body["access_token"] != tokens["access_token"]
    with app.app_context():
        from sso.oidc.keys import decode_jws

        keys = app.extensions["sso_keys"]
        old = decode_jws(keys, tokens["id_token"])
        new = decode_jws(keys, body["id_token"])
    assert new["sub"] == old["sub"] and new["auth_time"] == old["auth_time"]
    assert "nonce" not in new
    # The user's claims, read along with the claim, are the code exchange's.
    released = {"updated_at", "preferred_username", "name", "email", "email_verified",
                "roles"}
    assert {k: v for k, v in new.items() if k in released} == {
        k: v for k, v in old.items() if k in released}
    assert "updated_at" in new


def test_reuse_of_a_rotated_token_revokes_the_whole_family(
        flow: Flow, tokens: dict[str, Any], app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Outside the grace (tests/reliability/test_refresh_grace.py has the reuse within it).
    monkeypatch.setitem(app.config, "REFRESH_REUSE_GRACE", 0)
    second = _refresh(flow, tokens["refresh_token"]).get_json()
    reused = _refresh(flow, tokens["refresh_token"])
    assert reused.status_code == 400 and reused.get_json()["error"] == "invalid_grant"
    # The legitimate holder's newer tokens die with the family.
    assert _refresh(flow, second["refresh_token"]).get_json()["error"] == "invalid_grant"
    userinfo = flow.http.get("/userinfo",
                             headers={"Authorization": f"Bearer {second['access_token']}"})
    assert userinfo.status_code == 401


@pytest.mark.truncate  # threads: each commits on its own connection
def test_concurrent_refreshes_with_one_token_let_at_most_one_through(
        flow: Flow, tokens: dict[str, Any], app: Any) -> None:
    statuses: list[int] = []
    successors: set[str] = set()
    barrier = threading.Barrier(3)

    def refresh() -> None:
        http = app.test_client()
        barrier.wait()
        response = http.post("/token", data={"grant_type": "refresh_token",
                                             "refresh_token": tokens["refresh_token"]},
                             headers=basic(flow.app_client))
        statuses.append(response.status_code)
        if response.status_code == 200:
            successors.add(response.get_json()["refresh_token"])

    threads = [threading.Thread(target=refresh) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One use goes through; a request that comes after it committed gets the same answer
    # (the grace for a lost response), one that races it is refused.
    assert len(successors) <= 1 and set(statuses) <= {200, 400}


def test_narrower_scope_is_allowed_and_the_next_refresh_keeps_the_original(
        flow: Flow, tokens: dict[str, Any]) -> None:
    narrow = _refresh(flow, tokens["refresh_token"], scope="openid").get_json()
    assert narrow["scope"] == "openid"
    full = _refresh(flow, narrow["refresh_token"]).get_json()
    assert full["scope"] == tokens["scope"]


def test_wider_scope_is_invalid_scope(flow: Flow, tokens: dict[str, Any]) -> None:
    response = _refresh(flow, tokens["refresh_token"], scope="openid phone")
    assert response.get_json()["error"] == "invalid_scope"
    # A refused request does not burn the token.
    assert _refresh(flow, tokens["refresh_token"]).status_code == 200


def test_another_clients_refresh_token_is_invalid_grant(flow: Flow, tokens: dict[str, Any],
                                                        make_client: Any) -> None:
    crm = make_client("CRM", redirect_uris=["https://crm.example.com/cb"])
    response = flow.http.post("/token", data={"grant_type": "refresh_token",
                                              "refresh_token": tokens["refresh_token"]},
                              headers=basic(crm))
    assert response.get_json()["error"] == "invalid_grant"


def test_a_disabled_users_refresh_token_is_invalid_grant_and_stays_unused(
        flow: Flow, tokens: dict[str, Any], app: Any) -> None:
    """RFC 6749 §5.2: the grant is no longer valid. The claim is rolled back with the
    refusal, so the token works again once the account is enabled."""
    from sso.extensions import db
    from sso.users.service import find_by_login

    with app.app_context():
        find_by_login("alice").status = "disabled"
        db.session.commit()
    response = _refresh(flow, tokens["refresh_token"])
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"
    with app.app_context():
        find_by_login("alice").status = "active"
        db.session.commit()
    assert _refresh(flow, tokens["refresh_token"]).status_code == 200


def test_a_narrower_scope_keeps_the_granted_scope_on_the_new_refresh_token(
        flow: Flow, tokens: dict[str, Any]) -> None:
    narrowed = _refresh(flow, tokens["refresh_token"], scope="openid").get_json()
    assert narrowed["scope"] == "openid" and "id_token" in narrowed
    again = _refresh(flow, narrowed["refresh_token"]).get_json()
    assert set(again["scope"].split()) == set(tokens["scope"].split())


@pytest.mark.parametrize("token", ["", "ssor_unknown", "x" * 3000, "ssor_" + "a" * 200])
def test_unknown_refresh_tokens(flow: Flow, token: str) -> None:
    response = _refresh(flow, token)
    assert response.status_code == 400
    assert response.get_json()["error"] in ("invalid_grant", "invalid_request")


def test_sign_out_ends_session_bound_refresh_tokens(flow: Flow,
                                                    tokens: dict[str, Any]) -> None:
    page = flow.http.get("/")
    flow.http.post("/logout/confirm", data={"csrf_token": csrf_of(page.get_data(as_text=True))})
    assert _refresh(flow, tokens["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_offline_access_survives_sign_out(flow: Flow) -> None:
    tokens = flow.token(flow.authorize(scope="openid offline_access")["code"]).get_json()
    page = flow.http.get("/")
    flow.http.post("/logout/confirm", data={"csrf_token": csrf_of(page.get_data(as_text=True))})
    response = _refresh(flow, tokens["refresh_token"])
    assert response.status_code == 200


def test_client_without_refresh_grant_gets_no_refresh_token(make_client: Any, client: Any,
                                                            alice: Any) -> None:
    erp = make_client("NoRefresh", grant_types=["authorization_code"])
    flow = Flow(client, erp)
    body = flow.token(flow.authorize()["code"]).get_json()
    assert "refresh_token" not in body


def _between_take_and_rotation(app: Any, monkeypatch: pytest.MonkeyPatch,
                               meanwhile: Any) -> None:
    """Run ``meanwhile`` (in a thread of its own, with its own connections) once, after the
    next refresh has taken its token and before it writes the use."""
    from sso.oidc import tokens as token_store

    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("on SQLite the token is claimed when taken, in the request's transaction")
    rotate = token_store.rotate_refresh_token
    pending = [meanwhile]

    def interleaved(*args: Any, **kwargs: Any) -> bool:
        while pending:
            thread = threading.Thread(target=pending.pop())
            thread.start()
            thread.join()
        return rotate(*args, **kwargs)

    monkeypatch.setattr(token_store, "rotate_refresh_token", interleaved)


def _audit_count(app: Any, event: str) -> int:
    from sqlalchemy import func, select

    from sso.audit import AuditEvent
    from sso.extensions import db

    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(AuditEvent)
                                     .where(AuditEvent.event == event)))


def _refused_and_nothing_written(flow: Flow, tokens: dict[str, Any], app: Any) -> None:
    """The refresh is refused, neither issued nor taken for a reuse."""
    response = _refresh(flow, tokens["refresh_token"])
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
    assert _audit_count(app, "token.refresh") == 0
    assert _audit_count(app, "refresh.reuse") == 0


@pytest.mark.truncate  # threads: each commits on its own connection
def test_a_use_that_loses_the_claim_gets_the_winning_use_s_answer(
        flow: Flow, tokens: dict[str, Any], app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL reads the token, then claims it in the statement that writes the use:
    another use that claims it in between wins, and the slower one is answered as a retry
    within the grace is (the same answer), not as a reuse."""
    won: list[dict[str, Any]] = []

    def other_use() -> None:
        response = app.test_client().post(
            "/token", headers=basic(flow.app_client),
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
        assert response.status_code == 200
        won.append(response.get_json())

    _between_take_and_rotation(app, monkeypatch, other_use)
    late = _refresh(flow, tokens["refresh_token"])
    assert late.status_code == 200, late.get_json()
    assert late.get_json()["refresh_token"] == won[0]["refresh_token"]
    assert _audit_count(app, "token.refresh") == 1
    assert _audit_count(app, "refresh.replay") == 1
    assert _audit_count(app, "refresh.reuse") == 0
    assert _refresh(flow, won[0]["refresh_token"]).status_code == 200  # the chain lives


@pytest.mark.truncate
def test_a_user_disabled_between_the_read_and_the_claim_gets_invalid_grant(
        flow: Flow, tokens: dict[str, Any], app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim checks the user again under the row's lock: nothing is written, and the
    unused token is not taken for a reused one."""
    from sso.extensions import db
    from sso.users.service import find_by_login

    def disable() -> None:
        with app.app_context():
            find_by_login("alice").status = "disabled"
            db.session.commit()

    _between_take_and_rotation(app, monkeypatch, disable)
    _refused_and_nothing_written(flow, tokens, app)
    monkeypatch.undo()
    with app.app_context():
        find_by_login("alice").status = "active"
        db.session.commit()
    assert _refresh(flow, tokens["refresh_token"]).status_code == 200


@pytest.mark.truncate
def test_a_session_ended_between_the_read_and_the_claim_gets_invalid_grant(
        flow: Flow, tokens: dict[str, Any], app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import update

    from sso.extensions import db
    from sso.sessions.models import SSOSession

    def end_sessions() -> None:
        with app.app_context():
            db.session.execute(update(SSOSession).values(ended_at=SSOSession.created_at))
            db.session.commit()

    _between_take_and_rotation(app, monkeypatch, end_sessions)
    _refused_and_nothing_written(flow, tokens, app)
