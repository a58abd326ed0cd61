"""The pub/sub broker: one Redis subscription per worker process, fanned out in-process.

Each worker holds a single pattern subscription to every QR channel (``{prefix}qr:ev:*``) in a
background thread, and hands each message to the queues of that worker's requests waiting on
that QR id. A waiting desktop therefore costs a queue (and the server's thread that waits on
it), not a Redis connection.

No message is ever the only copy of the truth: a waiter registers its queue, then reads the
state from Redis, so an event published before it started waiting is not lost. When the
subscription breaks (Redis restarted or unreachable, or under Sentinel the master moved: a
failover) it subscribes again, on the new master, and every waiter is told to read the state
again; a key that vanished with a restarted Redis reads as ``expired``, an unreachable Redis
ends the wait with ``expired`` too, so a desktop never hangs. On a graceful worker shutdown
(SIGTERM, through :func:`sso.serving.on_worker_stop`) the open streams end with an SSE
``retry:`` hint and the browsers reconnect to another worker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from .. import metrics
from .store import EXPIRED, FINAL_STATES, QRStore, Unavailable

log = logging.getLogger(__name__)

#: What a waiter's queue may receive besides a state name.
RESYNC = "!resync"
SHUTDOWN = "!shutdown"
#: Quiet heartbeats between two reads of the state by a waiter that hears nothing.
REREAD_HEARTBEATS = 4
#: Seconds between two checks, under Sentinel, that the subscription is on the master.
MASTER_CHECK_INTERVAL = 5.0
STATES = frozenset({"pending", "scanned", "approved", "consumed", "denied", "expired"})


@dataclass(eq=False)
class Waiter:
    qr_id: str
    inbox: queue.Queue[str] = field(default_factory=queue.Queue)

    def next(self, timeout: float) -> str | None:
        try:
            return self.inbox.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None


class Broker:
    def __init__(self, store: QRStore, outage_grace: float = 0.0) -> None:
        self.store = store
        #: How long a waiter keeps asking a Redis that stopped answering before it gives up
        #: (a Sentinel failover takes a few seconds; the code's state is on the new master).
        self.outage_grace = outage_grace
        self.connected = threading.Event()
        self.closing = False
        self._waiters: dict[str, set[Waiter]] = {}
        self._lock = threading.Lock()
        self._pid: int | None = None
        self.delivered = 0

    # Waiters.

    def watch(self, qr_id: str) -> Waiter:
        self._ensure_running()
        waiter = Waiter(qr_id)
        with self._lock:
            self._waiters.setdefault(qr_id, set()).add(waiter)
        metrics.QR_WAITING.inc()
        return waiter

    def unwatch(self, waiter: Waiter) -> None:
        with self._lock:
            group = self._waiters.get(waiter.qr_id)
            if group is not None and waiter in group:
                group.discard(waiter)
                metrics.QR_WAITING.dec()
                if not group:
                    del self._waiters[waiter.qr_id]

    def waiting(self) -> int:
        with self._lock:
            return sum(len(group) for group in self._waiters.values())

    def _deliver(self, qr_id: str, message: str) -> None:
        with self._lock:
            group = list(self._waiters.get(qr_id, ()))
        for waiter in group:
            waiter.inbox.put_nowait(message)
        self.delivered += len(group)

    def _broadcast(self, message: str) -> None:
        with self._lock:
            everyone = [w for group in self._waiters.values() for w in group]
        for waiter in everyone:
            waiter.inbox.put_nowait(message)

    def shutdown(self) -> None:
        """End every stream of this worker with a reconnect hint (graceful worker exit)."""
        self.closing = True
        self._broadcast(SHUTDOWN)

    # The subscription.

    def _ensure_running(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            # A forked worker inherits neither the thread nor the waiters of its parent.
            self._pid = os.getpid()
            self._waiters = {}
            self.closing = False
            self.connected.clear()
            threading.Thread(target=self._run, name="qr-broker", daemon=True).start()
        # Give a fresh subscription a moment, so the first waiters need not poll.
        self.connected.wait(1.0)

    def _run(self) -> None:
        backoff = 0.1
        first = True
        while not self.closing:
            pubsub = None
            try:
                pubsub = self.store.redis.blocking_client().pubsub()
                pubsub.psubscribe(self.store.channel_pattern())
                while pubsub.get_message(timeout=1.0) is None:
                    pass  # the subscription's confirmation
                self.connected.set()
                if not first:
                    self._broadcast(RESYNC)
                first = False
                backoff = 0.1
                checked = time.monotonic()
                while not self.closing:
                    message = pubsub.get_message(timeout=5.0)
                    if message is not None and message["type"] == "pmessage":
                        self._deliver(self.store.id_of_channel(message["channel"]),
                                      message["data"].decode())
                    if time.monotonic() - checked >= MASTER_CHECK_INTERVAL:
                        checked = time.monotonic()
                        self._check_master(pubsub)
            except (redis.RedisError, OSError) as exc:
                self.connected.clear()
                first = False
                log.warning("QR event subscription lost, retrying: %s", exc)
                self._broadcast(RESYNC)
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(redis.RedisError, OSError):
                        pubsub.close()

    def _check_master(self, pubsub: Any) -> None:
        """Under Sentinel, resubscribe when the master moved while this connection stayed up
        (a demoted master that kept its clients would hear no more publishes)."""
        where = self.store.redis.master_address()
        connection = pubsub.connection
        if where is not None and connection is not None and \
                (connection.host, int(connection.port)) != where:
            raise redis.ConnectionError(f"the Redis master moved to {where[0]}:{where[1]}")


def sse(state: str, **extra: Any) -> str:
    return f"data: {json.dumps({'state': state, **extra})}\n\n"


def events(broker: Broker, qr_id: str, *, heartbeat: float, retry_ms: int) -> Iterator[str]:
    """The server-sent events of one waiting desktop, until a final state."""
    waiter = broker.watch(qr_id)
    try:
        yield f"retry: {retry_ms}\n: waiting\n\n"
        last: str | None = None
        for state, reason in _changes(broker, waiter, heartbeat):
            if state == SHUTDOWN:
                yield f"retry: {retry_ms}\ndata: {json.dumps({'state': 'reconnect'})}\n\n"
                return
            if state is None:
                yield ": ping\n\n"
                continue
            if state != last:
                yield sse(state, reason=reason) if reason else sse(state)
                last = state
            if state in FINAL_STATES:
                return
    finally:
        broker.unwatch(waiter)


def wait_for_change(broker: Broker, qr_id: str, known: str, timeout: float) -> str:
    """Long-poll: the first state other than ``known``, or ``known`` after ``timeout``."""
    waiter = broker.watch(qr_id)
    deadline = time.monotonic() + timeout
    try:
        for state, _reason in _changes(broker, waiter, max(timeout, 0.1)):
            if state == SHUTDOWN:
                return known
            if state is not None and (state != known or state in FINAL_STATES):
                return state
            if time.monotonic() >= deadline:
                return known
        return known
    finally:
        broker.unwatch(waiter)


def _changes(broker: Broker, waiter: Waiter, heartbeat: float
             ) -> Iterator[tuple[str | None, str | None]]:
    """Yield (state, reason) after reading Redis and after each wake-up; (None, None) when
    ``heartbeat`` passes quietly; (SHUTDOWN, None) when the worker stops.

    A state that arrives by pub/sub is used as it is; anything else (a resync after the
    subscription broke, a quiet heartbeat, the TTL running out) reads Redis again.
    """
    store = broker.store
    try:
        session = store.get(waiter.qr_id)
    except Unavailable:
        yield EXPIRED, "unavailable"
        return
    if session is None:
        yield EXPIRED, None
        return
    expires_at = session.expires_at
    state = session.state
    while True:
        yield state, None
        if state in FINAL_STATES:
            return
        read_at = time.time()
        while True:
            # Jitter spreads the heartbeats of desktops that started waiting together.
            timeout = min(heartbeat * random.uniform(0.5, 1.0), expires_at - time.time() + 0.05)
            if not broker.connected.is_set():
                timeout = min(timeout, 1.0)  # no subscription: poll until it is back
            message = waiter.next(timeout)
            if message == SHUTDOWN:
                yield SHUTDOWN, None
                return
            if message in STATES:
                yield message, None
                if message in FINAL_STATES:
                    return
                continue
            if message is not None or not broker.connected.is_set():
                break  # a resync: read the state again
            if time.time() >= expires_at:
                break
            yield None, None  # a quiet heartbeat keeps proxies from closing the stream
            # Now and then read the state again, in case the key went without an event
            # (evicted, deleted by an operator); every heartbeat would cost 10,000 waiters
            # hundreds of wake-ups a second.
            if time.time() - read_at >= REREAD_HEARTBEATS * heartbeat:
                break
        found = _state_across_outage(broker, waiter.qr_id)
        if found is None:
            yield EXPIRED, "unavailable"
            return
        state = found


def _state_across_outage(broker: Broker, qr_id: str) -> str | None:
    """The state, asked again for up to ``broker.outage_grace`` seconds while Redis does not
    answer (a failover); ``None`` if it never does."""
    deadline = time.monotonic() + broker.outage_grace
    while True:
        try:
            return broker.store.state(qr_id)
        except Unavailable:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.25)
