"""A persistent outbox: messages to the outside world (mail, SMS, security events to apps)
are written in the same transaction as the change they report, then delivered with retries.

Nothing is lost if the mail server or an app is down: a delivery loop in every worker process
claims due messages atomically (so several workers and nodes never send one twice), calls the
channel's transport and backs off exponentially on failure. In development the mail and SMS
transports keep messages in the table, where ``/dev/outbox`` shows them.
"""

from __future__ import annotations

import contextvars
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app, g, has_request_context
from sqlalchemy import JSON, Integer, String, Text, event, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from .dbtypes import UTCDateTime, utcnow
from .extensions import db
from .metrics import delivery_failed

log = logging.getLogger(__name__)

PENDING, SENT, HELD, DEAD = "pending", "sent", "held", "dead"
MAX_ATTEMPTS = 12
CLAIM_SECONDS = 60
POLL_SECONDS = 2.0
#: How often a request looks whether the delivery threads still run (:meth:`DeliveryLoop.start`).
LANE_CHECK_SECONDS = 1.0


class OutboxMessage(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: "mail", "sms" or "event"; each has a transport registered with :func:`register_transport`.
    channel: Mapped[str] = mapped_column(String(16), index=True)
    #: Why it is sent ("activation", "reset", "app-activated", ...), for the admin and tests.
    purpose: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(512))
    subject: Mapped[str | None] = mapped_column(String(255))
    body_text: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    status: Mapped[str] = mapped_column(String(8), default=PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    #: Who holds the claim: only that delivery may write the outcome or renew it.
    claim_token: Mapped[str | None] = mapped_column(String(32))


class Hold(Exception):
    """Raised by a transport that keeps the message in the outbox (development)."""


class GiveUp(Exception):
    """Raised by a transport when retrying cannot help (the recipient refused the message)."""


Transport = Callable[[OutboxMessage, Any], None]
_transports: dict[str, Callable[[Any], Transport]] = {}
_wakes = {lane: threading.Event() for lane in ("messages", "events", "jobs")}


def register_transport(channel: str, factory: Callable[[Any], Transport]) -> None:
    """``factory(config)`` returns the function that sends one message of ``channel``."""
    _transports[channel] = factory


def enqueue(channel: str, purpose: str, recipient: str, *, subject: str | None = None,
            body_text: str | None = None, body_html: str | None = None,
            payload: dict[str, Any] | None = None, user_id: int | None = None) -> OutboxMessage:
    """Add a message to the current transaction; it is delivered once that commits."""
    message = OutboxMessage(channel=channel, purpose=purpose, recipient=recipient,
                            subject=subject, body_text=body_text, body_html=body_html,
                            payload=payload or {}, user_id=user_id, next_attempt_at=utcnow())
    db.session.add(message)
    for lane in LANES:
        _wakes[lane].set()
    return message


#: Lanes: each has its own delivery thread, so mail and SMS never queue behind a slow app.
#: "events" carries every other channel (events to apps, back-channel logout, ...).
MESSAGE_CHANNELS = ("mail", "sms")
LANES: dict[str, tuple[str, ...] | None] = {"messages": MESSAGE_CHANNELS, "events": None}


def _claim_seconds(config: Any) -> float:
    return float(config.get("OUTBOX_CLAIM_SECONDS", CLAIM_SECONDS))


def _claim(config: Any, now: datetime, limit: int, only: Collection[int] | None = None,
           channels: Collection[str] | None = None,
           exclude: Collection[str] | None = None) -> list[tuple[int, str]]:
    query = (
        select(OutboxMessage.id)
        .where(OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at <= now,
               or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now))
        .order_by(OutboxMessage.next_attempt_at).limit(limit)
    )
    if only is not None:
        query = query.where(OutboxMessage.id.in_(list(only)))
    if channels is not None:
        query = query.where(OutboxMessage.channel.in_(list(channels)))
    if exclude is not None:
        query = query.where(OutboxMessage.channel.not_in(list(exclude)))
    due = db.session.scalars(query).all()
    claimed = []
    until = now + timedelta(seconds=_claim_seconds(config))
    for message_id in due:
        token = secrets.token_hex(16)
        won = db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.status == PENDING,
                   or_(OutboxMessage.claimed_until.is_(None),
                       OutboxMessage.claimed_until < now))
            .values(claimed_until=until, claim_token=token)
        ).rowcount
        if won:
            claimed.append((message_id, token))
    db.session.commit()
    return claimed


class _Renewal:
    """Keeps a claim alive while its delivery runs (a thread of its own, with its own short
    transactions), so no other worker takes the message meanwhile, however long it takes."""

    def __init__(self, engine: Any, message_id: int, token: str, seconds: float) -> None:
        self.engine, self.message_id, self.token, self.seconds = engine, message_id, token, seconds
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sso-outbox-claim", daemon=True)

    def __enter__(self) -> _Renewal:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.done.set()

    def _run(self) -> None:
        while not self.done.wait(self.seconds / 3):
            try:
                with self.engine.begin() as connection:
                    connection.execute(
                        update(OutboxMessage)
                        .where(OutboxMessage.id == self.message_id,
                               OutboxMessage.claim_token == self.token)
                        .values(claimed_until=utcnow() + timedelta(seconds=self.seconds)))
            except Exception:  # noqa: BLE001 - retried on the next tick
                log.warning("could not renew the claim on outbox message %s", self.message_id)


def deliver_due(config: Any, now: datetime | None = None, limit: int = 50,
                only: Collection[int] | None = None,
                channels: Collection[str] | None = None,
                exclude: Collection[str] | None = None) -> int:
    """Deliver what is due (of ``only``, of ``channels``, not of ``exclude``, if given);
    return how many were sent.

    Runs in an app context. ``only`` lets a request try its own message at once (an app's
    security event before the user lands there) without sending anyone else's mail.

    No database connection is held while a transport runs: the claim commits, the message is
    read and the session closed, the transport runs (its claim renewed meanwhile), and the
    outcome is written in a transaction of its own, only if the claim is still this one's.
    """
    now = now or utcnow()
    sent = 0
    engine = db.engine
    for message_id, token in _claim(config, now, limit, only, channels, exclude):
        row = db.session.get(OutboxMessage, message_id)
        if row is None:
            continue
        # A copy outside the session for the transport (the caller may hold the row itself).
        message = OutboxMessage(**{c.key: getattr(row, c.key)
                                   for c in OutboxMessage.__table__.columns})
        db.session.rollback()  # nothing to undo: this gives the connection back
        factory = _transports.get(message.channel)
        outcome: dict[str, Any] = {}
        attempts = message.attempts + 1
        try:
            with _Renewal(engine, message_id, token, _claim_seconds(config)):
                if factory is None:
                    raise RuntimeError(f"no transport for channel {message.channel!r}")
                factory(config)(message, config)
        except Hold:
            outcome = {"status": HELD}
        except GiveUp as exc:
            outcome = {"status": DEAD, "attempts": attempts, "last_error": f"{exc}"[:500]}
            delivery_failed(message.channel, "refused")
            log.error("outbox message %s (%s) refused by the recipient: %s", message_id,
                      message.channel, outcome["last_error"])
        except Exception as exc:  # noqa: BLE001 - any transport failure is retried
            error = f"{type(exc).__name__}: {exc}"[:500]
            outcome = {"attempts": attempts, "last_error": error}
            delivery_failed(message.channel, "given_up" if attempts >= MAX_ATTEMPTS else "retry")
            if attempts >= MAX_ATTEMPTS:
                outcome["status"] = DEAD
                log.error("outbox message %s (%s) given up: %s", message_id, message.channel,
                          error)
            else:
                delay = min(2 ** attempts * 5, 3600)
                outcome["next_attempt_at"] = utcnow() + timedelta(seconds=delay)
                log.warning("outbox message %s (%s) failed, retry in %s s: %s", message_id,
                            message.channel, delay, error)
        else:
            outcome = {"status": SENT, "sent_at": utcnow(), "attempts": attempts,
                       "last_error": None}
            sent += 1
            if not config.get("OUTBOX_KEEP_BODIES"):
                # Delivered messages may hold one-time links; keep only what the audit needs.
                outcome["body_text"] = outcome["body_html"] = None
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.claim_token == token)
            .values(claimed_until=None, claim_token=None, **outcome))
        db.session.commit()
    return sent


_TASKS = "sso_outbox_tasks"
#: Lanes that run tasks only: long work (a bulk import) that must not hold up the events.
TASK_LANES = ("jobs",)


def every_pass(app: Flask, task: Callable[[], bool | None], lane: str = "events") -> None:
    """Run ``task`` (in an app context) on every pass of the delivery loop's ``lane``; it
    decides itself how often to do real work (the session sweep, say). A task of a task lane
    that returns True has more to do: the next pass follows at once."""
    app.extensions.setdefault(_TASKS, {}).setdefault(lane, []).append(task)


def wake(lane: str) -> None:
    """Start the next pass of ``lane`` in this process now rather than at the next poll."""
    _wakes[lane].set()


class DeliveryLoop:
    """One daemon thread per lane and process that drains the outbox: mail and SMS in one,
    events to apps in the other."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.threads: dict[str, threading.Thread] = {}
        self.stopping = threading.Event()
        # The server answers requests on many threads at once: one starts a lane's thread.
        self._starting = threading.Lock()
        #: The lanes were all seen running in this process until then (monotonic seconds).
        self._running_until = float("-inf")
        self._running_in: int | None = None

    def start(self) -> None:
        """Start the lanes that are not running. Called by every request: between two checks
        of the threads (at most a second apart) it costs one comparison and a ``getpid``; a
        forked worker (a new pid) checks at once."""
        if time.monotonic() < self._running_until and self._running_in == os.getpid():
            return
        tasks = self.app.extensions.get(_TASKS, {})
        lanes = (*LANES, *(lane for lane in TASK_LANES if tasks.get(lane)))
        with self._starting:
            for lane in lanes:
                thread = self.threads.get(lane)
                if thread is None or not thread.is_alive():
                    thread = threading.Thread(target=self._run, args=(lane, LANES.get(lane)),
                                              name=f"sso-outbox-{lane}", daemon=True)
                    self.threads[lane] = thread
                    thread.start()
            self._running_in = os.getpid()
            self._running_until = time.monotonic() + LANE_CHECK_SECONDS

    def _run(self, lane: str, channels: tuple[str, ...] | None) -> None:
        wake = _wakes[lane]
        while not self.stopping.is_set():
            more = False
            try:
                with self.app.app_context():
                    if lane in LANES:
                        deliver_due(self.app.config, channels=channels,
                                    exclude=MESSAGE_CHANNELS if channels is None else None)
                    for task in self.app.extensions.get(_TASKS, {}).get(lane, []):
                        more = bool(task()) or more
                    db.session.remove()
            except Exception:  # noqa: BLE001 - the loop must survive a database outage
                log.exception("outbox delivery pass (%s) failed", lane)
            if not more:
                wake.wait(POLL_SECONDS)
            wake.clear()


# Events to apps that a request committed are tried at once, after its work is done, so an
# app can have its record before the user lands there; the request that caused them does not
# have to know (the sign-in flow's effects queue them). Mail and SMS wait for the loop: a slow
# mail server must never hold a user's request.
INLINE_CHANNELS = frozenset({"event"})
#: A payload key: this message of an inline channel waits for the loop all the same.
NOT_INLINE = "not_inline"
_NEW = "sso_outbox_new"
_COMMITTED = "sso_outbox_committed"


@event.listens_for(Session, "after_flush")
def _note_new(session: Session, _context: Any) -> None:
    ids = [obj.id for obj in session.new
           if isinstance(obj, OutboxMessage) and obj.channel in INLINE_CHANNELS
           and not (obj.payload or {}).get(NOT_INLINE)]
    if ids:
        session.info.setdefault(_NEW, []).extend(ids)


#: Committed messages of a request answered outside Flask's request context
#: (:mod:`sso.oidc.direct`), to be delivered as :func:`_deliver_committed` does for Flask's.
_committed_outside: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "sso_outbox_committed", default=None)


@event.listens_for(Session, "after_commit")
def _note_committed(session: Session) -> None:
    ids = session.info.pop(_NEW, None)
    if not ids:
        return
    if has_request_context():
        g.setdefault(_COMMITTED, []).extend(ids)
    elif (outside := _committed_outside.get()) is not None:
        outside.extend(ids)


def collect_committed() -> tuple[list[int], contextvars.Token[list[int] | None]]:
    """Start gathering the messages committed from here, outside a Flask request: the list
    fills as commits happen; hand it to :func:`deliver_soon`, the token to
    :func:`stop_collecting`."""
    committed: list[int] = []
    return committed, _committed_outside.set(committed)


def stop_collecting(token: contextvars.Token[list[int] | None]) -> None:
    _committed_outside.reset(token)


@event.listens_for(Session, "after_rollback")
def _forget_new(session: Session) -> None:
    session.info.pop(_NEW, None)


#: The longest a request waits for its events' first attempt, whatever the settings say.
INLINE_DEADLINE_MAX = 2.0


def deliver_soon(message_ids: Collection[int]) -> None:
    """These committed messages should go out now: a first attempt, in this process, with no
    database connection held and under ``EVENTS_INLINE_DEADLINE`` (at most 2 s) in total.

    What does not make it stays claimed or pending and the delivery loop carries on; nothing
    here can fail the request that caused the messages.
    """
    if not message_ids:
        return
    config = current_app.config
    inline = min(float(config.get("EVENTS_INLINE_DEADLINE", INLINE_DEADLINE_MAX)),
                 float(config.get("EVENTS_TIMEOUT", INLINE_DEADLINE_MAX)), INLINE_DEADLINE_MAX)
    try:
        # The request's work is committed (only committed messages are here): ending the
        # transaction gives its connection back while the objects stay usable.
        db.session.rollback()
        deliver_due({**config, "EVENTS_TIMEOUT": inline, "OUTBOUND_INLINE": True},
                    only=list(message_ids), channels=INLINE_CHANNELS)
    except Exception:  # noqa: BLE001 - the loop retries; the user goes on
        db.session.rollback()
        log.exception("first delivery of outbox messages %s failed", list(message_ids))


def _deliver_committed(response: Any) -> Any:
    deliver_soon(g.pop(_COMMITTED, []))
    return response


def init_app(app: Flask) -> None:
    app.after_request(_deliver_committed)
    loop = DeliveryLoop(app)
    app.extensions["sso_outbox"] = loop
    if app.config.get("OUTBOX_DELIVERY", not app.config["TESTING"]):
        # Started on the first request, so that it runs in the worker (after the server
        # forks it), not in the master process.
        app.before_request(lambda: loop.start())
        # The requests answered in front of Flask (sso.oidc.direct) start it too.
        app.extensions["sso_outbox_autostart"] = loop.start
