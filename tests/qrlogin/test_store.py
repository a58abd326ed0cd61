"""The QR session state machine on a real Redis: every transition atomic, each one published."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from sso.qrlogin import store as qr


@pytest.fixture
def store(app: Any, ctx: None) -> Iterator[qr.QRStore]:
    yield app.extensions["sso_qr_store"]


def _new(store: qr.QRStore, number_matching: bool = False) -> qr.Created:
    return store.create(client_id="erp", client_name="ERP", desktop_ip="192.0.2.1",
                        desktop_ua="desktop", number_matching=number_matching)


def test_the_happy_path_and_what_each_step_publishes(store: qr.QRStore) -> None:
    created = _new(store)
    qr_id = created.session.id
    pubsub = store.redis.client.pubsub()
    pubsub.subscribe(store.channel(qr_id))
    pubsub.get_message(timeout=5)  # the subscription's confirmation
    assert store.get(qr_id).state == qr.PENDING  # type: ignore[union-attr]
    assert 0 < store.redis.client.ttl(store.key(qr_id)) <= 120
    assert store.scan(qr_id, 7, "198.51.100.2", "phone").ok
    assert store.approve(qr_id, 7, None, ["otp"], "198.51.100.2", "phone").ok
    outcome = store.consume(qr_id, created.secret)
    assert outcome.ok and outcome.session is not None
    assert outcome.session.state == qr.CONSUMED and outcome.session.user_id == 7
    assert outcome.session.factors == ("otp",)
    published = []
    while (message := pubsub.get_message(timeout=5)) is not None:
        published.append(message["data"].decode())
        if len(published) == 3:
            break
    assert published == ["scanned", "approved", "consumed"]
    pubsub.close()


def test_the_secret_is_stored_only_as_a_hash(store: qr.QRStore) -> None:
    created = _new(store)
    raw = store.redis.client.hgetall(store.key(created.session.id))
    assert created.secret.encode() not in b"".join([*raw.keys(), *raw.values()])


@pytest.mark.parametrize("action", ["scan", "approve", "consume"])
def test_of_many_concurrent_attempts_exactly_one_wins(store: qr.QRStore, action: str) -> None:
    created = _new(store)
    qr_id = created.session.id
    if action != "scan":
        store.scan(qr_id, 1, "ip", "ua")
    if action == "consume":
        store.approve(qr_id, 1, None, [], "ip", "ua")
    barrier = threading.Barrier(16)
    results: list[str] = []

    def attempt(n: int) -> None:
        barrier.wait()
        if action == "scan":
            outcome = store.scan(qr_id, n + 1, "ip", "ua")  # sixteen different users
        elif action == "approve":
            outcome = store.approve(qr_id, 1, None, [], "ip", "ua")
        else:
            outcome = store.consume(qr_id, created.secret)
        results.append(outcome.result)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(qr.OK) == 1, results
    assert len(results) == 16


def test_refusals_change_nothing(store: qr.QRStore) -> None:
    created = _new(store)
    qr_id = created.session.id
    assert store.approve(qr_id, 1, None, [], "ip", "ua").result == qr.PENDING  # not scanned
    assert store.consume(qr_id, created.secret).result == qr.PENDING  # not approved
    store.scan(qr_id, 1, "ip", "ua")
    assert store.scan(qr_id, 2, "ip", "ua").result == qr.OTHER_USER
    assert store.approve(qr_id, 2, None, [], "ip", "ua").result == qr.OTHER_USER
    assert store.deny(qr_id, 2).result == qr.OTHER_USER
    assert store.get(qr_id).state == qr.SCANNED  # type: ignore[union-attr]
    store.approve(qr_id, 1, None, [], "ip", "ua")
    assert store.consume(qr_id, "not-the-secret").result == qr.WRONG_SECRET
    assert store.consume(qr_id, "").result == qr.WRONG_SECRET
    assert store.approve(qr_id, 1, None, [], "ip", "ua").result == qr.APPROVED  # twice
    assert store.get(qr_id).state == qr.APPROVED  # type: ignore[union-attr]
    assert store.consume(qr_id, created.secret).ok
    assert store.consume(qr_id, created.secret).result == qr.CONSUMED  # single use
    assert store.deny(qr_id, 1).result == qr.CONSUMED


@pytest.mark.parametrize("qr_id", ["", "short", "x" * 23, "../../etc/passwd", "a" * 21 + "*",
                                   "Zm9vYmFyYmF6cXV4cXV1eA"])
def test_malformed_and_unknown_ids(store: qr.QRStore, qr_id: str) -> None:
    assert store.get(qr_id) is None
    assert store.scan(qr_id, 1, "ip", "ua").result == qr.MISSING
    assert store.consume(qr_id, "secret").result == qr.MISSING
    assert store.state(qr_id) == qr.EXPIRED


def test_an_expired_code_is_gone(store: qr.QRStore) -> None:
    created = _new(store)
    store.redis.client.delete(store.key(created.session.id))  # what the TTL does at 120 s
    assert store.get(created.session.id) is None
    assert store.state(created.session.id) == qr.EXPIRED
    assert store.scan(created.session.id, 1, "ip", "ua").result == qr.MISSING


def test_number_matching(store: qr.QRStore) -> None:
    created = _new(store, number_matching=True)
    session = created.session
    assert session.number is not None and session.number in session.choices
    assert len(set(session.choices)) == 3 and all(10 <= c <= 99 for c in session.choices)
    store.scan(session.id, 1, "ip", "ua")
    wrong = next(c for c in session.choices if c != session.number)
    assert store.approve(session.id, 1, wrong, [], "ip", "ua").result == qr.WRONG_NUMBER
    assert store.get(session.id).state == qr.DENIED  # type: ignore[union-attr]
    second = _new(store, number_matching=True).session
    store.scan(second.id, 1, "ip", "ua")
    assert store.approve(second.id, 1, None, [], "ip", "ua").result == qr.WRONG_NUMBER
    third = _new(store, number_matching=True).session
    store.scan(third.id, 1, "ip", "ua")
    assert store.approve(third.id, 1, third.number, [], "ip", "ua").ok


def test_only_the_scanner_can_deny(store: qr.QRStore) -> None:
    first = _new(store).session
    assert store.deny(first.id, 1).result == qr.PENDING
    second = _new(store).session
    store.scan(second.id, 1, "ip", "ua")
    assert store.deny(second.id, 1).ok
    assert store.approve(second.id, 1, None, [], "ip", "ua").result == qr.DENIED
