"""The desktop's wait: server-sent events and the long-poll fallback, woken through pub/sub."""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

import pytest

from tests.qrlogin.conftest import Desktop, Phone

# Streams and long polls are read from other threads: their rows must be really committed.
pytestmark = pytest.mark.truncate

GENEROUS = 10.0  # seconds; a bound against hanging, not a performance assertion


def _read_events(response: Any, into: queue.Queue[str]) -> None:
    buffer = ""
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            for line in block.splitlines():
                if line.startswith("data: "):
                    into.put(json.loads(line[6:])["state"])
    into.put("<closed>")


def _stream(desktop: Desktop, code: dict[str, Any]) -> queue.Queue[str]:
    response = desktop.http.get(code["events_url"], buffered=False)
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-store"
    states: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read_events, args=(response, states), daemon=True).start()
    return states


def test_the_stream_follows_the_phone_until_a_final_state(desktop: Desktop, phone: Phone
                                                          ) -> None:
    code = desktop.start()
    states = _stream(desktop, code)
    assert states.get(timeout=GENEROUS) == "pending"
    phone.open(code["id"])
    assert states.get(timeout=GENEROUS) == "scanned"
    phone.approve(code["id"])
    assert states.get(timeout=GENEROUS) == "approved"
    desktop.complete()
    assert states.get(timeout=GENEROUS) == "consumed"
    assert states.get(timeout=GENEROUS) == "<closed>"


def test_a_late_stream_reads_the_state_first(desktop: Desktop, phone: Phone) -> None:
    code = desktop.start()
    phone.approve(code["id"])  # before anyone listens: the event alone would be lost
    states = _stream(desktop, code)
    assert states.get(timeout=GENEROUS) == "approved"


def test_cancel_on_the_phone_ends_the_stream(desktop: Desktop, phone: Phone) -> None:
    code = desktop.start()
    states = _stream(desktop, code)
    assert states.get(timeout=GENEROUS) == "pending"
    phone.deny(code["id"])
    assert states.get(timeout=GENEROUS) == "scanned"
    assert states.get(timeout=GENEROUS) == "denied"
    assert states.get(timeout=GENEROUS) == "<closed>"


def test_expiry_is_told_to_the_stream(desktop: Desktop, app: Any,
                                      monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "QR_HEARTBEAT", 0.5)
    code = desktop.start()
    states = _stream(desktop, code)
    assert states.get(timeout=GENEROUS) == "pending"
    with app.app_context():
        store = app.extensions["sso_qr_store"]
        store.redis.client.pexpire(store.key(code["id"]), 1)  # the TTL running out
    assert states.get(timeout=GENEROUS) == "expired"


def test_a_stream_without_the_desktop_secret_only_hears_expired(desktop: Desktop,
                                                                app: Any) -> None:
    code = desktop.start()
    stranger = app.test_client()
    body = stranger.get(code["events_url"]).get_data(as_text=True)
    assert json.loads(body.split("data: ")[1])["state"] == "expired"
    assert stranger.get(code["poll_url"]).get_json() == {"state": "expired"}


def test_long_poll_returns_the_next_state(desktop: Desktop, phone: Phone) -> None:
    code = desktop.start()
    assert desktop.http.get(code["poll_url"] + "?known=").get_json()["state"] == "pending"
    answers: queue.Queue[str] = queue.Queue()

    def wait() -> None:
        answers.put(desktop.http.get(code["poll_url"] + "?known=pending").get_json()["state"])

    threading.Thread(target=wait, daemon=True).start()
    phone.open(code["id"])
    assert answers.get(timeout=GENEROUS) == "scanned"


def _subscriber_connections(app: Any) -> int:
    clients = app.extensions["sso_redis"].client.client_list()
    return sum(1 for c in clients if int(c.get("psub", 0)) > 0)


def test_one_subscription_serves_every_waiter(desktop: Desktop, phone: Phone, app: Any) -> None:
    """However many desktops wait, the worker holds one pub/sub connection."""
    broker = app.extensions["sso_qr_broker"]
    codes = [desktop.start()] + [desktop.new_code() for _ in range(4)]
    first = _stream(desktop, codes[0])
    assert first.get(timeout=GENEROUS) == "pending"
    subscribers, waiting = _subscriber_connections(app), broker.waiting()
    streams = [first] + [_stream(desktop, code) for code in codes[1:]]
    for states in streams[1:]:
        assert states.get(timeout=GENEROUS) == "pending"
    assert broker.waiting() == waiting + 4
    assert _subscriber_connections(app) == subscribers
    phone.approve(codes[2]["id"])
    assert streams[2].get(timeout=GENEROUS) == "scanned"
    assert streams[2].get(timeout=GENEROUS) == "approved"
    assert all(s.empty() for i, s in enumerate(streams) if i != 2)
