"""Append-only audit log of security-relevant events.

Services call :func:`record` with explicit facts; the request context (IP, user agent) is
filled in by the web layer through :func:`request_context`, so services stay free of Flask.
Secrets never enter the log: no passwords, codes, tokens or OTPs, only ids and outcomes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from . import database, driversql, logs
from .dbtypes import UTCDateTime, utcnow
from .extensions import db
from .logs import current_request_id
from .metrics import audit_event as audit_metric

log = logging.getLogger("sso.audit")


class AuditEvent(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # event, user_id and client_id are indexed with id (sso/admin/models.py, migration 0022).
    event: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(Integer)
    #: What the actor typed or who they are, for failed sign-ins where there is no user id.
    subject: Mapped[str | None] = mapped_column(String(254))
    client_id: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[str | None] = mapped_column(String(43))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    #: Who decided (an admin's ``admin:<username>``, ``cli``), copied from the ``actor``
    #: detail so the audit log can be filtered by it (migration 0016).
    actor: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: The request's X-Request-Id (sso/logs.py), to find its log lines; None outside requests.
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)


_INSERT = AuditEvent.__table__.insert()


@dataclass(frozen=True)
class Origin:
    """Where a request came from, handed by views to services."""

    ip: str | None = None
    user_agent: str | None = None


SUCCESS = "success"
FAILURE = "failure"


def record(event: str, outcome: str = SUCCESS, **facts: Any) -> None:
    """Add one audit event to the current transaction (it commits with the change it records).
    ``facts``: :func:`row`'s keywords (``origin``, ``user_id``, ``subject``, ``client_id``,
    ``session_id``) and the event's details.

    A Core INSERT in the session's transaction, not an ORM object: every token request
    writes one, and the unit of work's flush cost more than the statement itself. It runs on
    the session's connection as the driver's SQL (:mod:`.driversql`): ``Session.execute``
    would do no more for a Core statement (no autoflush; its ``do_orm_execute`` listeners
    look for client and role tables), and SQLAlchemy's per-call statement work was half the
    cost of the INSERT on SQLite.
    """
    record_row(row(event, outcome, **facts))


def record_row(values: dict[str, Any]) -> None:
    """:func:`record` for an event's row already made (:func:`row`)."""
    driversql.execute(database.connection(), _INSERT, values)
    recorded(values)


def row(
    event: str,
    outcome: str = SUCCESS,
    *,
    origin: Origin | None = None,
    user_id: int | None = None,
    subject: str | None = None,
    client_id: str | None = None,
    session_id: str | None = None,
    **details: Any,
) -> dict[str, Any]:
    """The audit event's row, for a statement that writes it along with what it records
    (``sso.oidc.tokens.claim_then_write``); :func:`recorded` once it is written."""
    origin = origin or Origin()
    return {
        "at": utcnow(),
        "event": event,
        "outcome": outcome,
        "user_id": user_id,
        "subject": (subject or None) and subject[:254],
        "client_id": client_id,
        "session_id": session_id,
        "ip": origin.ip,
        "user_agent": (origin.user_agent or None) and origin.user_agent[:255],
        "actor": str(details["actor"])[:128] if details.get("actor") else None,
        "details": details,
        "request_id": current_request_id(),
    }


def recorded(values: dict[str, Any]) -> None:
    """What follows an audit row written (:func:`row`): its metric and its log line."""
    audit_metric(values["event"], values["outcome"], values["details"])
    logs.info(log, "%s %s user=%s client=%s ip=%s", values["event"], values["outcome"],
              values["user_id"], values["client_id"], values["ip"])


#: The columns of :func:`row`, in order.
COLUMNS = ("at", "event", "outcome", "user_id", "subject", "client_id", "session_id", "ip",
           "user_agent", "actor", "details", "request_id")


def record_now(event: str, outcome: str = SUCCESS, **kwargs: Any) -> None:
    """Record and commit at once: for failures, where the request's own work is rolled back."""
    record(event, outcome, **kwargs)
    db.session.commit()
