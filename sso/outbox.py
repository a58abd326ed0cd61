"""A persistent outbox: messages to the outside world (mail, SMS, security events to apps)
are written in the same transaction as the change they report, then delivered with retries.

Nothing is lost if the mail server or an app is down: a delivery loop in every worker process
claims due messages atomically (so several workers and nodes never send one twice), calls the
channel's transport and backs off exponentially on failure. In development the mail and SMS
transports keep messages in the table, where ``/dev/outbox`` shows them.
"""

from __future__ import annotations

import logging
import threading
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


class Hold(Exception):
    """Raised by a transport that keeps the message in the outbox (development)."""


class GiveUp(Exception):
    """Raised by a transport when retrying cannot help (the recipient refused the message)."""


Transport = Callable[[OutboxMessage, Any], None]
_transports: dict[str, Callable[[Any], Transport]] = {}
_wake = threading.Event()


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
    _wake.set()
    return message


def _claim(now: datetime, limit: int, only: Collection[int] | None = None) -> list[int]:
    query = (
        select(OutboxMessage.id)
        .where(OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at <= now,
               or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now))
        .order_by(OutboxMessage.next_attempt_at).limit(limit)
    )
    if only is not None:
        query = query.where(OutboxMessage.id.in_(list(only)))
    due = db.session.scalars(query).all()
    claimed = []
    for message_id in due:
        won = db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.status == PENDING,
                   or_(OutboxMessage.claimed_until.is_(None),
                       OutboxMessage.claimed_until < now))
            .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
        ).rowcount
        if won:
            claimed.append(message_id)
    db.session.commit()
    return claimed


def deliver_due(config: Any, now: datetime | None = None, limit: int = 50,
                only: Collection[int] | None = None) -> int:
    """Deliver what is due (of ``only``, if given); return how many messages were sent.

    Runs in an app context. ``only`` lets a request try its own message at once (an app's
    security event before the user lands there) without sending anyone else's mail.
    """
    now = now or utcnow()
    sent = 0
    for message_id in _claim(now, limit, only):
        message = db.session.get(OutboxMessage, message_id)
        if message is None:
            continue
        factory = _transports.get(message.channel)
        try:
            if factory is None:
                raise RuntimeError(f"no transport for channel {message.channel!r}")
            factory(config)(message, config)
        except Hold:
            message.status = HELD
        except GiveUp as exc:
            message.attempts += 1
            message.last_error = f"{exc}"[:500]
            message.status = DEAD
            delivery_failed(message.channel, "refused")
            log.error("outbox message %s (%s) refused by the recipient: %s", message.id,
                      message.channel, message.last_error)
        except Exception as exc:  # noqa: BLE001 - any transport failure is retried
            message.attempts += 1
            message.last_error = f"{type(exc).__name__}: {exc}"[:500]
            delivery_failed(message.channel, "given_up" if message.attempts >= MAX_ATTEMPTS
                            else "retry")
            if message.attempts >= MAX_ATTEMPTS:
                message.status = DEAD
                log.error("outbox message %s (%s) given up: %s", message.id, message.channel,
                          message.last_error)
            else:
                delay = min(2 ** message.attempts * 5, 3600)
                message.next_attempt_at = utcnow() + timedelta(seconds=delay)
                log.warning("outbox message %s (%s) failed, retry in %s s: %s", message.id,
                            message.channel, delay, message.last_error)
        else:
            message.status = SENT
            message.sent_at = utcnow()
            message.attempts += 1
            sent += 1
            if not config.get("OUTBOX_KEEP_BODIES"):
                # Delivered messages may hold one-time links; keep only what the audit needs.
                message.body_text = message.body_html = None
        message.claimed_until = None
        db.session.commit()
    return sent


class DeliveryLoop:
    """One daemon thread (a greenlet under gevent) per process that drains the outbox."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()

    def start(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._run, name="sso-outbox", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                with self.app.app_context():
                    deliver_due(self.app.config)
                    db.session.remove()
            except Exception:  # noqa: BLE001 - the loop must survive a database outage
                log.exception("outbox delivery pass failed")
            _wake.wait(POLL_SECONDS)
            _wake.clear()


# Events to apps that a request committed are tried at once, after its work is done, so an
# app can have its record before the user lands there; the request that caused them does not
# have to know (the sign-in flow's effects queue them). Mail and SMS wait for the loop: a slow
# mail server must never hold a user's request.
INLINE_CHANNELS = frozenset({"event"})
_NEW = "sso_outbox_new"
_COMMITTED = "sso_outbox_committed"


@event.listens_for(Session, "after_flush")
def _note_new(session: Session, _context: Any) -> None:
    ids = [obj.id for obj in session.new
           if isinstance(obj, OutboxMessage) and obj.channel in INLINE_CHANNELS]
    if ids:
        session.info.setdefault(_NEW, []).extend(ids)


@event.listens_for(Session, "after_commit")
def _note_committed(session: Session) -> None:
    ids = session.info.pop(_NEW, None)
    if ids and has_request_context():
        g.setdefault(_COMMITTED, []).extend(ids)


@event.listens_for(Session, "after_rollback")
def _forget_new(session: Session) -> None:
    session.info.pop(_NEW, None)


def deliver_soon(message_ids: Collection[int]) -> None:
    """These committed messages should go out now: a first attempt, in this process."""
    if message_ids:
        deliver_due(current_app.config, only=list(message_ids))


def _deliver_committed(response: Any) -> Any:
    deliver_soon(g.pop(_COMMITTED, []))
    return response


def init_app(app: Flask) -> None:
    app.after_request(_deliver_committed)
    loop = DeliveryLoop(app)
    app.extensions["sso_outbox"] = loop
    if app.config.get("OUTBOX_DELIVERY", not app.config["TESTING"]):
        # Started on the first request, so that it runs in the worker (after gunicorn forks
        # and gevent patches threading), not in the master process.
        app.before_request(lambda: loop.start())
