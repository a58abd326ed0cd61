"""The protocol's hot requests take turns (``sso.database.Turns``): on a SQLite file they run
one at a time and write on the one connection handed back last, whose page cache stays
warm; on PostgreSQL ``SSO_POSTGRES_TURNS`` of them run at once; both whether answered in
front of Flask or through it. A ``client_credentials`` token (no database) and other paths
overlap as before; a request that waits too long for its turn goes on without it; settings
turn them off."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event
from werkzeug.test import EnvironBuilder

from sso import create_app, database
from sso.extensions import db
from sso.metrics import TURNS_WAITED_OUT
from sso.oidc import endpoints
from tests.conftest import Flow, basic

#: Real commits from several threads.
pytestmark = pytest.mark.truncate

HOT = {"/token", "/introspect", "/userinfo", "/authorize"}


def _turns(app: Flask) -> database.Turns | None:
    layer = app.wsgi_app
    while hasattr(layer, "wsgi_app"):
        if isinstance(layer, database.Turns):
            return layer
        layer = layer.wsgi_app
    return None


class Inside:
    """Counts the calls inside ``function`` at once, each kept there a little longer (a
    sleep, which lets other threads run)."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.most = self.now = 0
        self.lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            time.sleep(0.02)
            return self.function(*args, **kwargs)
        finally:
            with self.lock:
                self.now -= 1


def _inside_token_endpoint(monkeypatch: Any) -> Inside:
    """The token endpoint's one implementation, which both transports call, counted."""
    inside = Inside(endpoints.token)
    monkeypatch.setattr(endpoints, "token", inside)
    return inside


def _at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    results: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index: int) -> None:
        start.wait()
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def _writers(app: Flask) -> tuple[set[int], Callable[[], None]]:
    """The DB-API connections that run writes on the app's engine, until the returned
    function is called."""
    seen: set[int] = set()
    with app.app_context():
        engine = db.engine

    def note(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            seen.add(id(conn.connection.dbapi_connection))

    event.listen(engine, "before_cursor_execute", note)
    return seen, lambda: event.remove(engine, "before_cursor_execute", note)


def test_turns_are_taken_one_at_a_time_on_sqlite_and_three_on_postgresql(
        app: Flask, database_url: str) -> None:
    layer = _turns(app)
    assert layer is not None and layer.paths == HOT and layer.wait == 0.25
    assert layer.at_once == (1 if database_url.startswith("sqlite") else 3)


def test_a_wait_of_zero_takes_no_turns(app_config: dict[str, Any]) -> None:
    assert _turns(create_app({**app_config, "TURN_WAIT": 0})) is None
    # The setting's earlier name is still read.
    assert _turns(create_app({**app_config, "SQLITE_TURN_WAIT": 0})) is None


def test_postgresql_turns_are_a_setting(app_config: dict[str, Any], database_url: str) -> None:
    if database_url.startswith("sqlite"):
        layer = _turns(create_app({**app_config, "POSTGRES_TURNS": 0}))
        assert layer is not None and layer.at_once == 1
        return
    assert _turns(create_app({**app_config, "POSTGRES_TURNS": 0})) is None
    layer = _turns(create_app({**app_config, "POSTGRES_TURNS": 2}))
    assert layer is not None and layer.at_once == 2


def test_refreshes_at_once_take_turns(
        app: Flask, flow: Flow, database_url: str, monkeypatch: Any) -> None:
    bare, auth = app.test_client(), basic(flow.app_client)
    refresh_tokens = []
    for _ in range(6):
        code = flow.authorize()["code"]
        answer = bare.post("/token", headers=auth, data={
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": flow.params["redirect_uri"], "code_verifier": flow.verifier})
        refresh_tokens.append(answer.get_json()["refresh_token"])
    inside = _inside_token_endpoint(monkeypatch)
    writers, stop = _writers(app)
    try:
        answers = _at_once([
            lambda token=token: app.test_client().post("/token", headers=auth, data={
                "grant_type": "refresh_token", "refresh_token": token}).status_code
            for token in refresh_tokens[:3]] + [
            # Through Flask (a cookie): the turn is taken in front of the routes.
            lambda token=token: _with_a_cookie(app).post("/token", headers=auth, data={
                "grant_type": "refresh_token", "refresh_token": token}).status_code
            for token in refresh_tokens[3:]])
    finally:
        stop()
    assert answers == [200] * 6
    if database_url.startswith("sqlite"):
        assert inside.most == 1
        assert len(writers) == 1
    else:
        assert 1 < inside.most <= 3


def _with_a_cookie(app: Flask) -> Any:
    """A client whose requests carry a cookie: Flask answers them, not the layer in front."""
    http = app.test_client()
    http.set_cookie("lang", "en")
    return http


def test_client_credentials_tokens_touch_no_database_and_take_no_turn(
        app: Flask, make_client: Any, monkeypatch: Any) -> None:
    service = make_client("Reports", grant_types=["client_credentials"], scope="reports",
                          redirect_uris=[])
    inside = _inside_token_endpoint(monkeypatch)
    answers = _at_once([lambda: app.test_client().post(
        "/token", data={"grant_type": "client_credentials"},
        headers=basic(service)).status_code] * 6)
    assert answers == [200] * 6
    assert inside.most > 1


def test_other_paths_overlap(app: Flask, monkeypatch: Any) -> None:
    # Counted behind the turns (where a turn would hold them one at a time), if any.
    holder: Any = _turns(app) or app
    inside = Inside(holder.wsgi_app)
    monkeypatch.setattr(holder, "wsgi_app", inside)
    answers = _at_once([lambda: app.test_client().get("/healthz").status_code] * 6)
    assert answers == [200] * 6
    assert inside.most > 1


def test_a_request_that_waits_too_long_goes_on_without_its_turn(
        app: Flask, make_client: Any) -> None:
    service = make_client("Reports", grant_types=["client_credentials"], scope="reports",
                          redirect_uris=[])
    layer = database.Turns(app.wsgi_app, ["/token"], wait=0.05)
    waited_out_before = TURNS_WAITED_OUT._value.get()
    environ = EnvironBuilder(path="/token", method="POST", headers=basic(service),
                             data={"grant_type": "client_credentials"}).get_environ()
    status: list[str] = []
    layer.turn.acquire()  # a holder that does not give its turn back
    try:
        started = time.monotonic()
        body = _at_once([lambda: b"".join(layer(
            environ, lambda code, headers, exc=None: status.append(code)))])[0]
        waited = time.monotonic() - started
    finally:
        layer.turn.release()
    assert body is not None and status == ["200 OK"], body
    assert 0.05 <= waited < 5
    assert layer.without_turn == 1
    assert TURNS_WAITED_OUT._value.get() == waited_out_before + 1
