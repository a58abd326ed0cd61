"""Calls out (sso/outbound.py, the outbox): a total deadline, a size cap, no redirects, checked
addresses, a breaker per endpoint, no database connection held, one delivery at a time, and
mail in a lane of its own. The peers are real sockets that misbehave on purpose."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from sso import database, outbound, outbox
from sso.extensions import db
from sso.outbox import OutboxMessage
from tests.apps.conftest import app_result, run_flow
from tests.conftest import Flow
from tests.reliability.peers import Peer, answer, huge, slow, trickle

# Deliveries run on threads and peers that must see committed rows, and some tests count the
# connections in use: no per-test rollback here.
pytestmark = pytest.mark.truncate

TESTING = {"TESTING": True}
PRODUCTION = {"ENV": "production"}

REFUSED = [
    # (url, development?) -> refused
    ("http://127.0.0.1:6379/", False),          # the Redis port, plain http, production
    ("https://127.0.0.1/admin", False),         # loopback outside development
    ("https://localhost/events", False),
    ("http://10.0.0.5/events", True),           # plain http to a private address
    ("https://10.0.0.5/events", True),
    ("https://192.168.1.2/events", True),
    ("https://172.16.3.4/events", True),
    ("https://169.254.169.254/latest/meta-data", True),
    ("https://metadata.google.internal/computeMetadata/v1", True),
    ("https://[fe80::1]/events", True),
    ("https://[fd00:ec2::254]/events", True),
    ("https://[::ffff:127.0.0.1]/events", False),
    ("https://0.0.0.0/events", True),
    ("https://0x7f.1/events", True),
    ("https://2130706433/events", True),
    ("https://erp.example.com:99999/events", True),
    ("https://erp.example.com:0/events", True),
    ("https://erp.example.com:/events", True),
    ("https://user:secret@erp.example.com/events", True),
    ("https://erp.example.com/ev ents", True),
    ("https://erp.example.com/events\r\nX-Injected: 1", True),
    ("https://erp.example.com/events\t", True),
    ("https://erp.example.com/events#frag", True),
    ("ftp://erp.example.com/events", True),
    ("/events", True),
    ("https://erp.example.com/" + "a" * 600, True),
]
ACCEPTED = [
    ("https://erp.example.com/events", False, ()),
    ("https://erp.example.com:8443/events?tenant=1", False, ()),
    ("https://93.184.216.34/events", False, ()),
    ("http://127.0.0.1:8000/events", True, ()),
    ("http://localhost:8000/events", True, ()),
    ("https://10.1.2.3/events", False, ("10.0.0.0/8",)),
    ("https://erp.internal.example/events", False, ("erp.internal.example",)),
]


@pytest.mark.parametrize(("url", "dev"), REFUSED)
def test_endpoints_that_are_refused(url: str, dev: bool) -> None:
    with pytest.raises(outbound.EndpointRefused) as refused:
        outbound.check_url(url, dev=dev, what="events endpoint")
    assert str(refused.value).startswith("events endpoint: ")


@pytest.mark.parametrize(("url", "dev", "allow"), ACCEPTED)
def test_endpoints_that_are_accepted(url: str, dev: bool, allow: tuple[str, ...]) -> None:
    assert outbound.check_url(url, dev=dev, allow=allow) == url


def test_registration_gives_a_clear_error(app: Any, runner: Any, make_app: Any) -> None:
    from sso.cli import cli

    erp = make_app("auto")
    for url, why in (("http://10.0.0.5/events", "use https"),
                     ("https://169.254.169.254/latest", "link-local"),
                     ("https://erp.example.com:99999/e", "port"),
                     ("https://erp.example.com/a b", "spaces")):
        result = runner.invoke(cli, ["clients", "update", erp.client_id,
                                     "--events-endpoint", url])
        assert result.exit_code != 0 and why in result.output, result.output
        assert "Traceback" not in result.output


def test_a_name_that_resolves_to_a_private_address_is_refused_when_calling() -> None:
    host = socket.gethostname()
    address = socket.getaddrinfo(host, 443, 0, socket.SOCK_STREAM)[0][4][0]
    import ipaddress

    if ipaddress.ip_address(address).is_global:
        pytest.skip(f"{host} resolves to a public address here")
    url = f"https://{host}/events"
    assert outbound.check_url(url, dev=False) == url  # a name: fine when registered
    with pytest.raises(outbound.EndpointRefused) as refused:
        outbound.post(url, b"x", {}, deadline=2, config=PRODUCTION)
    assert f"resolves to {address}" in str(refused.value)
    # ... unless the admin lists it.
    with pytest.raises(outbound.OutboundError):
        outbound.post(f"https://{host}:{_closed_port()}/events", b"x", {}, deadline=2,
                      config={**PRODUCTION, "OUTBOUND_ALLOW": host})


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_trickling_answer_is_cut_at_the_total_deadline() -> None:
    """Each byte comes well within any per-read timeout; the whole answer takes 20 s."""
    peer = Peer(trickle(total=20))
    try:
        with pytest.raises(outbound.OutboundTimeout):
            outbound.post(peer.url, b"x", {}, deadline=1, config=TESTING)
    finally:
        peer.stop()


def test_the_answer_is_capped_while_reading() -> None:
    behave = huge(size=32 * 1024 * 1024)
    peer = Peer(behave)
    try:
        response = outbound.post(peer.url, b"x", {}, deadline=10, config=TESTING,
                                 max_bytes=4096)
    finally:
        peer.stop()
    assert response.status == 400 and response.truncated and len(response.body) == 4096
    assert behave.sent["bytes"] < 32 * 1024 * 1024  # type: ignore[attr-defined]


def test_redirects_are_not_followed() -> None:
    target = Peer(answer(202))
    redirecting = Peer(answer(302, headers=f"Location: {target.url}\r\n"))
    try:
        response = outbound.post(redirecting.url, b"x", {}, deadline=5, config=TESTING)
    finally:
        redirecting.stop()
        target.stop()
    assert response.status == 302 and target.requests == 0


def test_the_breaker_opens_after_failures_and_closes_after_a_success() -> None:
    behaviour = {"status": 503}
    peer = Peer(lambda conn, body: answer(behaviour["status"])(conn, body))
    config = {**TESTING, "OUTBOUND_BREAKER_FAILURES": 3, "OUTBOUND_BREAKER_SECONDS": 0.5}
    try:
        for _ in range(3):
            assert outbound.post(peer.url, b"x", {}, deadline=5, config=config).status == 503
        for _ in range(5):
            with pytest.raises(outbound.CircuitOpen):
                outbound.post(peer.url, b"x", {}, deadline=5, config=config)
        assert peer.requests == 3
        behaviour["status"] = 202
        threading.Event().wait(0.6)  # the breaker lets one trial through after its pause
        assert outbound.post(peer.url, b"x", {}, deadline=5, config=config).status == 202
        assert outbound.breaker_state(peer.url) == {"failures": 0, "open": False}
    finally:
        peer.stop()


def test_calls_in_flight_per_endpoint_are_capped() -> None:
    release = threading.Event()
    peer = Peer(lambda conn, body: (release.wait(10), answer(202)(conn, body)))
    config = {**TESTING, "OUTBOUND_CONCURRENCY": 2}
    results: list[Any] = []

    def call() -> None:
        results.append(outbound.post(peer.url, b"x", {}, deadline=10, config=config).status)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        while peer.requests < 2:
            threading.Event().wait(0.05)
        with pytest.raises(outbound.Busy):
            outbound.post(peer.url, b"x", {}, deadline=5, config=config, wait_for_slot=False)
    finally:
        release.set()
        for thread in threads:
            thread.join()
        peer.stop()
    assert results == [202, 202] and peer.requests == 2


def _events(app: Any) -> list[OutboxMessage]:
    with app.app_context():
        rows = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        db.session.expunge_all()
        return list(rows)


def test_a_trickling_app_does_not_hold_a_first_sign_in(
        app: Any, client: FlaskClient, alice: Any, make_app: Any) -> None:
    peer = Peer(trickle(total=20))
    try:
        erp = make_app("auto", peer.url)
        flow = Flow(client, erp)
        assert "code" in app_result(run_flow(flow), flow)
    finally:
        peer.stop()
    [event] = _events(app)
    assert event.status == outbox.PENDING and event.attempts == 1
    assert "timed out" in event.last_error


def test_the_first_delivery_holds_no_database_connection(
        app: Any, client: FlaskClient, alice: Any, make_app: Any) -> None:
    with app.app_context():
        pool = db.engine.pool

    def in_use() -> int:
        """Connections out of the pool, less those kept idle for the token and authorization
        requests (``sso.database.HeldWrites``): what requests hold."""
        held = app.extensions.get(database._WRITE_CONNECTIONS)
        return int(pool.checkedout()) - (len(held.idle) if held is not None else 0)

    peer = Peer(answer(202), on_request=in_use)
    try:
        erp = make_app("auto", peer.url)
        flow = Flow(client, erp)
        assert "code" in app_result(run_flow(flow), flow)
    finally:
        peer.stop()
    assert peer.observed == [0]
    assert [e.status for e in _events(app)] == [outbox.SENT]


def _queue_event(app: Any, url: str) -> int:
    with app.app_context():
        message = outbox.enqueue("event", "probe", url, body_text="eyJ.x.y")
        db.session.commit()
        return message.id


def test_a_message_is_never_delivered_twice_at_once(app: Any) -> None:
    """The delivery outlasts its claim; the claim is renewed, so a second worker finds
    nothing to take."""
    peer = Peer(slow(2.5))
    config = {**app.config, "OUTBOX_CLAIM_SECONDS": 1, "EVENTS_TIMEOUT": 10}
    _queue_event(app, peer.url)
    sent: list[int] = []

    def first_worker() -> None:
        with app.app_context():
            sent.append(outbox.deliver_due(config))

    worker = threading.Thread(target=first_worker)
    worker.start()
    try:
        while peer.requests < 1:
            threading.Event().wait(0.05)
        threading.Event().wait(1.5)  # longer than the claim
        with app.app_context():
            assert outbox.deliver_due(config) == 0
    finally:
        worker.join()
        peer.stop()
    assert sent == [1] and peer.requests == 1
    assert [e.status for e in _events(app)] == [outbox.SENT]


def test_mail_does_not_queue_behind_a_hanging_app(app: Any) -> None:
    release = threading.Event()
    peer = Peer(lambda conn, body: (release.wait(60), answer(202)(conn, body)))
    before = app.config["EVENTS_TIMEOUT"]
    app.config["EVENTS_TIMEOUT"] = 120
    loop = outbox.DeliveryLoop(app)
    try:
        _queue_event(app, peer.url)
        loop.start()
        while peer.requests < 1:
            threading.Event().wait(0.05)
        with app.test_request_context():
            outbox.enqueue("mail", "reset", "alice@example.com", subject="Reset",
                           body_text="link")
            db.session.commit()
        held = threading.Event()
        for _ in range(600):
            statuses = {e.channel: e.status for e in _events(app)}
            if statuses.get("mail") == outbox.HELD:
                held.set()
                break
            threading.Event().wait(0.1)
        assert held.is_set() and statuses["event"] == outbox.PENDING
        assert not release.is_set()
    finally:
        release.set()
        loop.stopping.set()
        for wake in outbox._wakes.values():
            wake.set()
        for thread in loop.threads.values():
            thread.join(10)
        app.config["EVENTS_TIMEOUT"] = before
        peer.stop()


def test_the_delivery_loop_carries_every_channel_not_only_mail_and_events(app: Any) -> None:
    """Back-channel logout (and any channel added later) rides the apps' lane."""
    delivered = threading.Event()
    outbox.register_transport("probe-lane", lambda config: lambda m, c: delivered.set())
    loop = outbox.DeliveryLoop(app)
    try:
        with app.app_context():
            outbox.enqueue("probe-lane", "probe", "somewhere")
            db.session.commit()
        loop.start()
        assert delivered.wait(60)
    finally:
        loop.stopping.set()
        for wake in outbox._wakes.values():
            wake.set()
        for thread in loop.threads.values():
            thread.join(10)
