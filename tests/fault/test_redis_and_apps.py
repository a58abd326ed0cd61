"""Redis dies under the provider, and apps' events endpoints hang or trickle while twenty
people sign in to them for the first time (the fault suite's own PostgreSQL and Redis)."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from sso import outbox
from sso.dbtypes import utcnow
from sso.extensions import db
from sso.outbox import OutboxMessage
from tests.conftest import PASSWORD, Flow, basic, csrf_of
from tests.fault.services import Redis
from tests.fault.test_database import JOIN, _run_all
from tests.reliability.peers import Peer, answer, trickle

#: Threads and servers reach the database: real commits, tables emptied afterwards.
pytestmark = pytest.mark.truncate


def test_without_redis_sign_in_and_tokens_work_and_qr_says_unavailable(
        app: Flask, alice: Any, erp: Any, redis_server: Redis) -> None:
    warm = Flow(app.test_client(), erp)
    refresh = warm.token(warm.authorize()["code"]).get_json()["refresh_token"]
    redis_server.kill()
    flows = [Flow(app.test_client(), erp) for _ in range(4)]
    codes = _run_all([lambda f=f: f.authorize() for f in flows])
    assert all("code" in c for c in codes)
    tokens = [f.token(c["code"]) for f, c in zip(flows, codes, strict=True)]
    assert [t.status_code for t in tokens] == [200] * 4
    again = warm.http.post("/token", data={"grant_type": "refresh_token",
                                           "refresh_token": refresh}, headers=basic(erp))
    assert again.status_code == 200
    desktop = app.test_client()
    assert "unavailable" in desktop.get("/qr/login").get_data(as_text=True)
    csrf = csrf_of(desktop.get("/login").get_data(as_text=True))
    qr = desktop.post("/qr/sessions", headers={"X-CSRF-Token": csrf})
    assert qr.status_code == 503 and qr.get_json()["error"] == "unavailable"
    # Wrong passwords still lock (counted in the process), so a dead Redis opens nothing.
    http = app.test_client()
    for _ in range(app.config["LOCKOUT_THRESHOLD"]):
        Flow(http, erp).login("alice", "Wrong-guess-1")
    locked = Flow(app.test_client(), erp).login("alice", PASSWORD)
    assert "paused" in locked.get_data(as_text=True)
    redis_server.start()
    # Back: nothing was lost, the refreshed chain goes on.
    assert again.get_json()["refresh_token"]
    onwards = warm.http.post("/token", data={"grant_type": "refresh_token",
                                             "refresh_token": again.get_json()["refresh_token"]},
                             headers=basic(erp))
    assert onwards.status_code == 200


class Switchable:
    """An events endpoint that hangs (or trickles) until switched to answering 202."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.jtis: list[str] = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.peer = Peer(self.behave)

    def behave(self, conn: Any, body: bytes) -> None:
        if self.mode == "hang":
            self.released.wait(JOIN)
            return
        if self.mode == "trickle":
            trickle(total=30)(conn, body)
            return
        payload = body.split(b".")[1]
        claims = json.loads(__import__("base64").urlsafe_b64decode(payload + b"=" * 4))
        with self.lock:
            self.jtis.append(claims["jti"])
        answer(202)(conn, body)


def _first_sign_ins(app: Flask, make_user: Any, make_app: Any, mode: str) -> None:
    endpoint = Switchable(mode)
    try:
        erp = make_app("auto", endpoint.peer.url)
        service = app.test_client()
        batch = _batch_client(app)
        names = [f"user{n:02d}" for n in range(20)]
        for name in names:
            make_user(name)
        with app.app_context():
            outbox.enqueue("mail", "reset", "alice@example.com", subject="Reset",
                           body_text="link")
            db.session.commit()
        loop = outbox.DeliveryLoop(app)
        loop.start()
        try:
            calls = [lambda n=n: Flow(app.test_client(), erp).authorize(username=n)
                     for n in names]
            calls += [lambda: service.post("/token", data={"grant_type": "client_credentials"},
                                           headers=basic(batch)) for _ in range(5)]
            results = _run_all(calls)
        finally:
            loop.stopping.set()
            for wake in outbox._wakes.values():
                wake.set()
            endpoint.released.set()
            for thread in loop.threads.values():
                thread.join(JOIN)
        assert all("code" in r for r in results[:20]), results[:20]
        assert [r.status_code for r in results[20:]] == [200] * 5
        with app.app_context():
            mail = db.session.scalars(select(OutboxMessage).where(
                OutboxMessage.channel == "mail")).one()
            assert mail.status == outbox.HELD  # delivered (held: the development transport)
        # The app is fixed: every event arrives, exactly once.
        endpoint.mode = "answer"
        from sso import outbound

        outbound.reset()
        with app.app_context():
            for hours in range(1, 6):
                outbox.deliver_due(app.config, now=utcnow() + timedelta(hours=hours))
            statuses = [m.status for m in db.session.scalars(select(OutboxMessage).where(
                OutboxMessage.channel == "event"))]
        assert statuses == [outbox.SENT] * 20
        assert len(endpoint.jtis) == len(set(endpoint.jtis)) == 20
    finally:
        endpoint.released.set()
        endpoint.peer.stop()


def _batch_client(app: Flask) -> Any:
    from sso.oidc.clients import create_client
    from tests.conftest import _Snapshot

    with app.app_context():
        client, secret = create_client("Batch", [], grant_types=["client_credentials"],
                                       scope="reports", first_party=True)
        db.session.commit()
        return _Snapshot(client_id=client.client_id, secret=secret)


def test_a_hanging_events_endpoint_and_twenty_first_sign_ins(
        app: Flask, make_user: Any, make_app: Any) -> None:
    _first_sign_ins(app, make_user, make_app, "hang")


def test_a_trickling_events_endpoint_and_twenty_first_sign_ins(
        app: Flask, make_user: Any, make_app: Any) -> None:
    _first_sign_ins(app, make_user, make_app, "trickle")
