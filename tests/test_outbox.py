"""The persistent outbox: delivered once, retried with back-off, held in development."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from sso import outbox
from sso.dbtypes import utcnow
from sso.extensions import db


@pytest.fixture
def recorder() -> Any:
    sent: list[str] = []
    lock = threading.Lock()

    def transport(message: Any, config: Any) -> None:
        if message.recipient.startswith("fail"):
            raise ConnectionError("mail server down")
        with lock:
            sent.append(message.recipient)

    outbox.register_transport("test", lambda config: transport)
    return sent


@pytest.mark.truncate
def test_messages_leave_once_even_with_two_workers(app: Any, ctx: None, recorder: list[str]
                                                   ) -> None:
    for n in range(20):
        outbox.enqueue("test", "probe", f"user{n}@example.com")
    db.session.commit()

    def worker() -> None:
        with app.app_context():
            outbox.deliver_due(app.config)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(recorder) == sorted(f"user{n}@example.com" for n in range(20))
    statuses = {m.status for m in db.session.scalars(db.select(outbox.OutboxMessage))}
    assert statuses == {outbox.SENT}


def test_failures_are_retried_later_and_bodies_dropped_after_sending(
        app: Any, ctx: None, recorder: list[str]) -> None:
    failing = outbox.enqueue("test", "probe", "fail@example.com", body_text="link")
    ok = outbox.enqueue("test", "probe", "ok@example.com", body_text="secret link")
    db.session.commit()
    assert outbox.deliver_due(app.config) == 1
    db.session.refresh(failing)
    db.session.refresh(ok)
    assert failing.status == outbox.PENDING and failing.attempts == 1
    assert failing.next_attempt_at > utcnow() and "mail server down" in failing.last_error
    assert ok.status == outbox.SENT and ok.body_text is None
    assert outbox.deliver_due(app.config) == 0
    assert outbox.deliver_due(app.config, now=utcnow() + timedelta(hours=1)) == 0
    db.session.refresh(failing)
    assert failing.attempts == 2


def test_development_mail_is_held_and_shown_on_the_dev_outbox(app: Any, client: Any) -> None:
    with app.test_request_context():
        outbox.enqueue("mail", "probe", "bob@example.com", subject="Hello",
                       body_text="Open https://sso.test/x")
        db.session.commit()
        outbox.deliver_due(app.config)
        message = db.session.scalars(db.select(outbox.OutboxMessage)).one()
        assert message.status == outbox.HELD and message.body_text
    page = client.get("/dev/outbox").get_data(as_text=True)
    assert "bob@example.com" in page and 'href="https://sso.test/x"' in page
    listed = client.get("/dev/outbox?format=json&to=bob@example.com").get_json()
    assert listed[0]["subject"] == "Hello"


class _SlowLanes(dict):  # type: ignore[type-arg]
    """A lane table that answers slowly, so that concurrent starts meet inside ``start``."""

    def get(self, key: Any, default: Any = None) -> Any:
        threading.Event().wait(0.02)
        return super().get(key, default)


def test_requests_on_many_threads_start_each_lane_once(app: Any) -> None:
    """The server answers on many threads at once, and each request starts the loop."""
    loop = outbox.DeliveryLoop(app)
    loop.threads = _SlowLanes()
    started: list[str] = []
    counting = threading.Lock()
    run = loop._run

    def counted(lane: str, channels: Any) -> None:
        with counting:
            started.append(lane)
        run(lane, channels)

    loop._run = counted  # type: ignore[method-assign]
    callers = [threading.Thread(target=loop.start) for _ in range(8)]
    try:
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(10)
        threading.Event().wait(0.2)
        assert sorted(started) == sorted(set(started)) and set(started) == set(loop.threads)
    finally:
        loop.stopping.set()
        for wake in outbox._wakes.values():
            wake.set()
        for thread in list(loop.threads.values()):
            thread.join(10)
