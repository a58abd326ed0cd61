"""The same refresh token presented twice within SSO_REFRESH_REUSE_GRACE (a client whose
answer was lost retries) gets the same answer; outside the grace, reuse revokes the grant."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from sso.dbtypes import utcnow
from sso.extensions import db
from sso.oidc.models import RefreshToken
from tests.conftest import Flow, basic


def _refresh(flow: Flow, token: str) -> Any:
    return flow.http.post("/token", data={"grant_type": "refresh_token", "refresh_token": token},
                          headers=basic(flow.app_client))


def test_a_retry_within_the_grace_gets_the_same_pair_and_the_chain_lives(flow: Flow) -> None:
    tokens = flow.token(flow.authorize()["code"]).get_json()
    first = _refresh(flow, tokens["refresh_token"])
    retry = _refresh(flow, tokens["refresh_token"])
    assert first.status_code == retry.status_code == 200
    assert retry.get_json() == first.get_json()
    assert retry.headers["Cache-Control"] == "no-store"
    # The chain goes on from the successor, and its access token works.
    later = _refresh(flow, first.get_json()["refresh_token"])
    assert later.status_code == 200
    userinfo = flow.http.get("/userinfo", headers={
        "Authorization": f"Bearer {later.get_json()['access_token']}"})
    assert userinfo.status_code == 200


def test_reuse_after_the_grace_still_revokes(flow: Flow, app: Any) -> None:
    tokens = flow.token(flow.authorize()["code"]).get_json()
    first = _refresh(flow, tokens["refresh_token"]).get_json()
    with app.app_context():
        db.session.execute(update(RefreshToken).where(RefreshToken.used_at.is_not(None))
                           .values(used_at=utcnow() - timedelta(seconds=11)))
        db.session.commit()
    reused = _refresh(flow, tokens["refresh_token"])
    assert reused.status_code == 400 and reused.get_json()["error"] == "invalid_grant"
    assert _refresh(flow, first["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_another_client_cannot_replay(flow: Flow, make_client: Any) -> None:
    tokens = flow.token(flow.authorize()["code"]).get_json()
    assert _refresh(flow, tokens["refresh_token"]).status_code == 200
    other = make_client("Other")
    stolen = flow.http.post("/token", data={"grant_type": "refresh_token",
                                            "refresh_token": tokens["refresh_token"]},
                            headers=basic(other))
    assert stolen.status_code == 400 and stolen.get_json()["error"] == "invalid_grant"
    assert "access_token" not in stolen.get_json()


def test_the_sealed_answer_is_not_readable_in_the_database(flow: Flow, app: Any) -> None:
    tokens = flow.token(flow.authorize()["code"]).get_json()
    answer = _refresh(flow, tokens["refresh_token"]).get_json()
    with app.app_context():
        rows = list(db.session.scalars(db.select(RefreshToken).order_by(RefreshToken.id)))
    # The used token names its successor by hash; the successor keeps the sealed answer.
    used, successor = rows
    assert used.successor == successor.token_hash and used.answer is None
    assert successor.answer and successor.successor is None
    assert answer["refresh_token"] not in successor.answer
    assert answer["access_token"].split(".")[1] not in successor.answer


def test_purge_forgets_sealed_answers_past_the_grace(flow: Flow, app: Any) -> None:
    from sso.oidc.tokens import purge_expired

    tokens = flow.token(flow.authorize()["code"]).get_json()
    assert _refresh(flow, tokens["refresh_token"]).status_code == 200
    def kept(column: Any) -> int:
        return int(db.session.scalar(db.select(db.func.count()).select_from(RefreshToken)
                                     .where(column.is_not(None))))

    with app.app_context():
        purge_expired()
        assert kept(RefreshToken.answer) == 1 and kept(RefreshToken.successor) == 1
        assert purge_expired(utcnow() + timedelta(seconds=11)) >= 1
        db.session.commit()
        assert kept(RefreshToken.answer) == 0 and kept(RefreshToken.successor) == 0


def test_a_use_sealed_before_the_answer_moved_is_still_replayed(flow: Flow, app: Any) -> None:
    """A token used before migration 0021 keeps its answer on its own row; a retry within
    the grace still gets it."""
    from sso.oidc import tokens as token_store

    tokens = flow.token(flow.authorize()["code"]).get_json()
    first = _refresh(flow, tokens["refresh_token"]).get_json()
    with app.app_context():
        used = db.session.scalar(db.select(RefreshToken)
                                 .where(RefreshToken.used_at.is_not(None)))
        db.session.execute(update(RefreshToken).values(answer=None))
        db.session.execute(update(RefreshToken).where(RefreshToken.id == used.id)
                           .values(successor=token_store.seal(first)))
        db.session.commit()
    retry = _refresh(flow, tokens["refresh_token"])
    assert retry.status_code == 200 and retry.get_json() == first


def test_a_retry_whose_answer_was_forgotten_is_a_reuse(flow: Flow, app: Any) -> None:
    tokens = flow.token(flow.authorize()["code"]).get_json()
    first = _refresh(flow, tokens["refresh_token"]).get_json()
    with app.app_context():
        db.session.execute(update(RefreshToken).values(answer=None))
        db.session.commit()
    reused = _refresh(flow, tokens["refresh_token"])
    assert reused.status_code == 400 and reused.get_json()["error"] == "invalid_grant"
    assert _refresh(flow, first["refresh_token"]).get_json()["error"] == "invalid_grant"
