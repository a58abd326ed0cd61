"""The token endpoint's grants write on a connection held for the request, without an ORM
session (``sso.database.Writes``, ``HeldWrites``), against the real database with real
commits: nothing is taken from the pool and no ORM session is made on the usual path; where
the ORM is used inside (a client read from the database, the reuse of a refresh token), the
session joins the request's one connection and its commits are real; a request that fails
midway leaves nothing written, and its connection is not kept; with every held connection in
use a request takes one from the pool instead of waiting; a setting turns it off."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select

from sso import database
from sso.audit import AuditEvent
from sso.extensions import Session, db
from sso.oidc import tokens
from sso.oidc.models import RefreshToken
from sso.security import hash_token
from sso.sessions.models import SSOSession
from tests.conftest import Flow, basic

#: Real commits, seen by other connections.
pytestmark = pytest.mark.truncate


def _first_refresh_token(app: Flask, flow: Flow) -> str:
    code = flow.authorize()["code"]
    answer = flow.token(code)
    assert answer.status_code == 200, answer.get_json()
    return str(answer.get_json()["refresh_token"])


def _refresh(app: Flask, flow: Flow, token: str) -> Any:
    return app.test_client().post("/token", headers=basic(flow.app_client), data={
        "grant_type": "refresh_token", "refresh_token": token})


def _counted(app: Flask, monkeypatch: Any) -> tuple[dict[str, Any], Callable[[], None]]:
    """Pool checkouts of the app's engine, ORM sessions made, and the DB-API connections
    that wrote, until the returned function is called."""
    seen: dict[str, Any] = {"checkouts": 0, "sessions": 0, "writers": set(), "held": 0}
    with app.app_context():
        engine = db.engine
        reads = database.read_bind()
    engines = [engine] if reads is engine else [engine, reads.engine]

    def checkout(*_args: Any) -> None:
        seen["checkouts"] += 1

    def write(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        words = statement.upper().replace("(", " ").split()
        if words[0] in ("INSERT", "UPDATE", "DELETE") or (
                words[0] == "WITH" and {"INSERT", "UPDATE", "DELETE"} & set(words)):
            seen["writers"].add(id(conn.connection.dbapi_connection))

    made = Session.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        seen["sessions"] += 1
        made(self, *args, **kwargs)

    monkeypatch.setattr(Session, "__init__", init)
    take = database.HeldWrites.connect

    def taken(self: Any) -> Any:
        seen["held"] += 1
        return take(self)

    monkeypatch.setattr(database.HeldWrites, "connect", taken)
    event.listen(engine.pool, "checkout", checkout)
    for watched in engines:
        event.listen(watched, "before_cursor_execute", write)

    def stop() -> None:
        event.remove(engine.pool, "checkout", checkout)
        for watched in engines:
            event.remove(watched, "before_cursor_execute", write)
        monkeypatch.setattr(Session, "__init__", made)
        monkeypatch.setattr(database.HeldWrites, "connect", take)

    return seen, stop


def _held_connection(app: Flask) -> Any:
    with app.app_context():
        held = database.write_bind()
    assert isinstance(held, database.HeldWrites)
    assert held.idle
    connection, _since = held.idle[-1]  # handed back last: the next request takes it
    return connection


def _count(app: Flask, query: Any) -> int:
    with app.app_context(), db.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def _on_sqlite(app: Flask) -> bool:
    return str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("sqlite")


def _autocommit_connection(app: Flask) -> Any:
    """The connection of ``read_bind`` the next one-statement write takes (PostgreSQL)."""
    with app.app_context():
        reads = database.read_bind()
    assert isinstance(reads, database.HeldReads)
    connection, _since = reads.idle[-1]
    return connection


def test_refreshes_write_on_one_held_connection_without_an_orm_session(
        app: Flask, flow: Flow, monkeypatch: Any) -> None:
    """On SQLite the claim and the writes run on the held connection, in a transaction; on
    PostgreSQL the whole use is one statement, in autocommit on a connection of
    ``read_bind``, and no held connection is taken."""
    token = _first_refresh_token(app, flow)
    token = _refresh(app, flow, token).get_json()["refresh_token"]  # the client is cached
    seen, stop = _counted(app, monkeypatch)
    try:
        for _ in range(3):
            answer = _refresh(app, flow, token)
            assert answer.status_code == 200, answer.get_json()
            token = answer.get_json()["refresh_token"]
    finally:
        stop()
    assert seen["checkouts"] == 0
    assert seen["sessions"] == 0
    held = _held_connection(app)
    writer = held if _on_sqlite(app) else _autocommit_connection(app)
    assert seen["writers"] == {id(writer.connection.dbapi_connection)}
    # On PostgreSQL each use runs alone: the request takes no held connection at all.
    assert seen["held"] == (3 if _on_sqlite(app) else 0)
    assert not held.in_transaction() and not writer.in_transaction()
    # Committed: seen from another connection.
    used = select(func.count()).select_from(RefreshToken).where(
        RefreshToken.used_at.is_not(None))
    assert _count(app, used) == 4
    refreshed = select(func.count()).select_from(AuditEvent).where(
        AuditEvent.event == "token.refresh")
    assert _count(app, refreshed) == 4


def test_a_client_read_through_the_orm_joins_the_request_s_connection(
        app: Flask, flow: Flow, monkeypatch: Any) -> None:
    token = _first_refresh_token(app, flow)
    token = _refresh(app, flow, token).get_json()["refresh_token"]
    with app.app_context():
        from sso.oidc import clients

        clients.cached(flow.app_client.client_id)
        app.extensions[clients.CACHE_EXTENSION].invalidate()  # the next read is the ORM's
    seen, stop = _counted(app, monkeypatch)
    try:
        answer = _refresh(app, flow, token)
    finally:
        stop()
    assert answer.status_code == 200, answer.get_json()
    assert seen["sessions"] == 1
    assert seen["checkouts"] == 0
    assert seen["writers"] == {id(_held_connection(app).connection.dbapi_connection)}
    with app.app_context():
        assert tokens.find_refresh_token(answer.get_json()["refresh_token"]) is not None


def test_reuse_revokes_the_family_for_good_though_the_answer_is_an_error(
        app: Flask, flow: Flow, monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "REFRESH_REUSE_GRACE", 0)
    first = _first_refresh_token(app, flow)
    second = _refresh(app, flow, first).get_json()["refresh_token"]
    reused = _refresh(app, flow, first)
    assert reused.status_code == 400 and reused.get_json()["error"] == "invalid_grant"
    assert _refresh(app, flow, second).status_code == 400  # its family is revoked
    revoked = select(func.count()).select_from(RefreshToken).where(
        RefreshToken.revoked_at.is_not(None))
    assert _count(app, revoked) == 2
    reuse = select(func.count()).select_from(AuditEvent).where(
        AuditEvent.event == "refresh.reuse")
    assert _count(app, reuse) == 1
    assert not _held_connection(app).in_transaction()


def test_a_failure_midway_writes_nothing_and_keeps_no_connection(
        app: Flask, flow: Flow, monkeypatch: Any) -> None:
    """The database refuses the new token's row (its hash is another token's): the claim
    and the audit row are not written either, on SQLite by the transaction's rollback, on
    PostgreSQL because they are the same statement."""
    first = _first_refresh_token(app, flow)
    token = _refresh(app, flow, first).get_json()["refresh_token"]
    refreshed = select(func.count()).select_from(AuditEvent).where(
        AuditEvent.event == "token.refresh")
    before = _count(app, refreshed)
    issue = tokens.TokenService.new_refresh_token

    def colliding(self: Any, *args: Any, **kwargs: Any) -> Any:
        value, row = issue(self, *args, **kwargs)
        row["token_hash"] = hash_token(first)
        return value, row

    with app.app_context():
        holder = database.write_bind() if _on_sqlite(app) else database.read_bind()
    failing = _held_connection(app) if _on_sqlite(app) else _autocommit_connection(app)
    opened = holder.opened
    monkeypatch.setattr(tokens.TokenService, "new_refresh_token", colliding)
    assert _refresh(app, flow, token).status_code == 500
    monkeypatch.undo()
    assert _count(app, refreshed) == before  # the claim and the audit row not written
    # A connection a request failed on is not kept.
    assert failing not in [connection for connection, _ in holder.idle]
    assert holder.opened == opened - 1
    answer = _refresh(app, flow, token)  # not burned
    assert answer.status_code == 200, answer.get_json()
    assert not _held_connection(app).in_transaction()


def test_with_every_held_connection_in_use_a_request_takes_one_from_the_pool(
        app: Flask) -> None:
    with app.app_context():
        engine = database._read_engine(db.engine, app.config)  # of its own: nothing kept
    try:
        held = database.HeldWrites(engine, app.config, 1)
        with held.connect() as first, held.connect() as second:
            assert second is not first
            assert held.opened == 1
        assert [connection for connection, _ in held.idle] == [first]
        assert second.closed  # handed back to the pool, not kept
        with held.connect() as again:
            assert again is first
        assert engine.pool.checkedout() == 1  # the one kept
        held._discard_idle()
    finally:
        engine.dispose()


def test_a_size_of_zero_holds_none_and_the_grants_still_write(
        app: Flask, flow: Flow, monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "DB_HELD_WRITES", 0)
    monkeypatch.delitem(app.extensions, database._WRITE_CONNECTIONS, raising=False)
    with app.app_context():
        assert database.write_bind() is None
    token = _first_refresh_token(app, flow)
    answer = _refresh(app, flow, token)
    assert answer.status_code == 200, answer.get_json()
    used = select(func.count()).select_from(RefreshToken).where(
        RefreshToken.used_at.is_not(None))
    assert _count(app, used) == 1


def test_a_signed_in_authorization_writes_its_code_without_the_pool(
        app: Flask, flow: Flow, monkeypatch: Any) -> None:
    """Its reads run alone, before it writes. On SQLite the code and its audit row are
    written on the held connection, in the transaction the ORM session commits; on
    PostgreSQL they are one statement, in autocommit on a connection of ``read_bind``, and
    no held connection is taken."""
    flow.authorize()  # signs in
    flow.authorize()
    seen, stop = _counted(app, monkeypatch)
    try:
        answer = flow.authorize()
    finally:
        stop()
    assert "code" in answer
    assert seen["sessions"] == 1
    assert seen["checkouts"] == 0
    writer = _held_connection(app) if _on_sqlite(app) else _autocommit_connection(app)
    assert seen["writers"] == {id(writer.connection.dbapi_connection)}
    assert seen["held"] == (1 if _on_sqlite(app) else 0)
    assert not writer.in_transaction()
    assert flow.token(answer["code"]).status_code == 200  # the code was committed
    issued = select(func.count()).select_from(AuditEvent).where(
        AuditEvent.event == "code.issue")
    assert _count(app, issued) == 3


def test_an_authorization_that_also_changes_its_session_commits_both(
        app: Flask, flow: Flow, monkeypatch: Any) -> None:
    """The SSO session, read alone, is noted as active again (its ``last_seen_at``): the
    change and the code are written in one transaction, which the ORM session commits."""
    flow.authorize()  # signs in
    monkeypatch.setattr("sso.sessions.service.TOUCH_SECONDS", 0)
    with app.app_context():
        seen_before = db.session.scalar(select(SSOSession.last_seen_at))
    answer = flow.authorize()
    assert flow.token(answer["code"]).status_code == 200  # the code was committed
    with app.app_context():
        assert db.session.scalar(select(SSOSession.last_seen_at)) > seen_before
    assert not _held_connection(app).in_transaction()
