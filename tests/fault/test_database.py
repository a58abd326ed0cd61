"""The database stops, restarts and freezes under the provider (its own PostgreSQL): requests
fail fast with 503 ``temporarily_unavailable`` (a translated page for people), the provider
recovers by itself, and no refresh chain is lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import exc

from tests.conftest import Flow, basic, csrf_of
from tests.fault.services import Postgres
from tests.test_held_reads import own_reads, select_one

#: Threads and servers reach the database: real commits, tables emptied afterwards.
pytestmark = pytest.mark.truncate

#: Bound on the join of request threads: far above the settings' sum (a hang fails the test).
JOIN = 60


def _run_all(calls: list[Callable[[], Any]]) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i, c), daemon=True)
               for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN)
    assert not any(t.is_alive() for t in threads), "a request hung on the database"
    return results


def _refresh(flow: Flow, token: str) -> tuple[int, dict[str, Any]]:
    response = flow.http.post("/token", data={"grant_type": "refresh_token",
                                              "refresh_token": token},
                              headers=basic(flow.app_client))
    return response.status_code, response.get_json()


def _chains(app: Flask, erp: Any, count: int) -> list[tuple[Flow, str]]:
    chains = []
    for _ in range(count):
        flow = Flow(app.test_client(), erp)
        chains.append((flow, flow.token(flow.authorize()["code"]).get_json()["refresh_token"]))
    return chains


def test_a_frozen_database_fails_requests_and_loses_no_refresh_chain(
        app: Flask, alice: Any, erp: Any, postgres: Postgres) -> None:
    chains = _chains(app, erp, 6)
    postgres.freeze()
    try:
        frozen = _run_all([lambda f=f, t=t: _refresh(f, t) for f, t in chains])
    finally:
        postgres.thaw()
    assert [status for status, _ in frozen] == [503] * len(chains), frozen
    assert {body["error"] for _, body in frozen} == {"temporarily_unavailable"}
    # Thawed: every client retries its token and goes on along its chain.
    for flow, token in chains:
        status, body = _refresh(flow, token)
        assert status == 200, body
        status, body = _refresh(flow, body["refresh_token"])
        assert status == 200, body


def test_a_stopped_database_answers_503_and_the_provider_recovers_alone(
        app: Flask, alice: Any, erp: Any, make_client: Any, postgres: Postgres) -> None:
    service = make_client("Batch", grant_types=["client_credentials"], scope="reports",
                          redirect_uris=[])
    (flow, token), = _chains(app, erp, 1)
    browser = app.test_client()
    page = browser.get("/login").get_data(as_text=True)
    postgres.stop()
    stopped = _run_all([
        lambda: flow.http.post("/token", data={"grant_type": "client_credentials"},
                               headers=basic(service)),
        lambda: browser.post("/login", data={
            "csrf_token": csrf_of(page), "username": "alice", "password": "x"},
            headers={"Accept-Language": "zh-CN"}),
    ])
    assert stopped[0].status_code == 503
    assert stopped[0].get_json()["error"] == "temporarily_unavailable"
    assert stopped[0].headers["Retry-After"]
    assert stopped[1].status_code == 503
    assert "服务暂时不可用" in stopped[1].get_data(as_text=True)
    postgres.start()
    answer = flow.http.post("/token", data={"grant_type": "client_credentials"},
                            headers=basic(service))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert _refresh(flow, token)[0] == 200


def test_introspection_on_a_frozen_database_answers_503_and_recovers(
        app: Flask, alice: Any, erp: Any, postgres: Postgres) -> None:
    """Introspection reads on the engine of its own in autocommit (``database.read_bind``),
    under the same watchdog as the main one."""
    (flow, _refresh_token), = _chains(app, erp, 1)
    access = flow.token(flow.authorize()["code"]).get_json()["access_token"]

    def introspect() -> Any:
        return flow.http.post("/introspect", data={"token": access},
                              headers=basic(flow.app_client))

    assert introspect().get_json()["active"] is True
    postgres.freeze()
    try:
        frozen, = _run_all([introspect])
    finally:
        postgres.thaw()
    assert frozen.status_code == 503, frozen.get_data(as_text=True)
    assert frozen.get_json()["error"] == "temporarily_unavailable"
    assert introspect().get_json()["active"] is True


def test_the_reads_engine_keeps_its_connections_in_autocommit_through_the_ping(
        app: Flask, postgres: Postgres) -> None:
    """The pool's check of an idle connection switches autocommit on for its one round trip
    and back to what it was: off on the main engine, on on the reads' one."""
    from sso import database
    from sso.extensions import db

    with app.app_context():
        assert database.read_bind() is not db.engine
        engine = database._read_engine(db.engine, {**app.config, "DB_PING_IDLE": 0})
        try:
            for _ in range(2):  # a new connection, then the same one, checked on checkout
                with engine.connect() as connection:
                    assert connection.connection.driver_connection.autocommit is True
        finally:
            engine.dispose()


def _backend(connection: Any) -> Any:
    return connection.connection.dbapi_connection.info.backend_pid


def _terminate(postgres: Postgres, *pids: int) -> None:
    with psycopg.connect(postgres.url.replace("+psycopg", ""), autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_idle_connections_the_server_dropped_are_replaced_before_use(
        app: Flask, postgres: Postgres) -> None:
    """A restart drops every idle connection: the first one pinged fails its ping, and none
    of them is used again (the engine's pool would hand one back unchecked)."""
    reads = own_reads(app, DB_PING_IDLE=0.3)
    with reads.connect() as one, reads.connect() as two:
        dropped = [_backend(one), _backend(two)]
    _terminate(postgres, *dropped)
    time.sleep(0.4)
    for _ in range(2):
        with reads.connect() as connection:  # no error
            assert select_one(connection) == 1
            assert _backend(connection) not in dropped
    assert reads.opened == 1


def test_a_read_that_loses_the_server_fails_and_the_idle_connections_go(
        app: Flask, postgres: Postgres) -> None:
    """Without a ping (used within ``SSO_DB_PING_IDLE``), the read on a dropped connection
    fails (503 for its request), as a pooled one would; the others, dropped as well after a
    restart, are not handed out again."""
    reads = own_reads(app, DB_PING_IDLE=3600)
    with reads.connect() as one, reads.connect() as two:
        pids = [_backend(one), _backend(two)]
    _terminate(postgres, *pids)
    with pytest.raises(exc.OperationalError), reads.connect() as connection:
        select_one(connection)
    assert (reads.idle, reads.opened) == ([], 0)
    with reads.connect() as connection:
        assert select_one(connection) == 1
        assert _backend(connection) not in pids
