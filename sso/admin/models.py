"""Who may use the admin console, and the indexes its lists need.

A *super admin* is a user with ``is_admin`` (the provider's admin, created by
``sso users create --admin`` or the demo seed). Other remits are rows of :class:`AdminGrant`:
an *app admin* of one app (its users' activation and roles, its settings) or an *auditor*
(everything read-only, the audit log included).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..audit import AuditEvent
from ..dbtypes import UTCDateTime, utcnow
from ..extensions import db
from ..users.models import User

APP_ADMIN = "app_admin"
AUDITOR = "auditor"
ROLES = (APP_ADMIN, AUDITOR)


class AdminGrant(db.Model):  # type: ignore[name-defined,misc]
    """One admin remit of one user: ``app_admin`` of ``client_id``, or ``auditor``."""

    __tablename__ = "admin_grants"
    __table_args__ = (UniqueConstraint("user_id", "role", "client_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    client_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("clients.client_id", ondelete="CASCADE")
    )
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    granted_by: Mapped[str | None] = mapped_column(String(128))


# Indexes for the console's lists (migration 0016). Keyset paging walks them in order, and the
# prefix searches use the pattern-ops variants on PostgreSQL (LIKE 'abc%' cannot use a plain
# index under a non-C collation).
Index("ix_users_status_username", User.status, User.username)
Index("ix_users_username_prefix", User.username,
      postgresql_ops={"username": "varchar_pattern_ops"})
Index("ix_users_email_prefix", User.email, postgresql_ops={"email": "varchar_pattern_ops"})
Index("ix_users_phone_prefix", User.phone, postgresql_ops={"phone": "varchar_pattern_ops"})
Index("ix_audit_events_event_id", AuditEvent.event, AuditEvent.id)
Index("ix_audit_events_user_id_id", AuditEvent.user_id, AuditEvent.id)
Index("ix_audit_events_client_id_id", AuditEvent.client_id, AuditEvent.id)
Index("ix_audit_events_actor_id", AuditEvent.actor, AuditEvent.id)
Index("ix_audit_events_ip_id", AuditEvent.ip, AuditEvent.id)
Index("ix_audit_events_outcome_id", AuditEvent.outcome, AuditEvent.id)


class RegistrationToken(db.Model):  # type: ignore[name-defined,misc]
    """A bearer token of dynamic client registration (RFC 7591 §3, RFC 7592 §3), kept as a
    SHA-256 hash: an *initial* access token a super admin issued (optionally for an app admin,
    who becomes the admin of the apps it registers), or the *registration* access token of
    one client, which reads or deletes that client's registration."""

    __tablename__ = "registration_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    client_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("clients.client_id", ondelete="CASCADE"), index=True
    )
    #: The app admin whose remit apps registered with this initial token join.
    for_user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE")
    )
    label: Mapped[str | None] = mapped_column(String(128))
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ImportJob(db.Model):  # type: ignore[name-defined,misc]
    """A bulk import of users that a background worker writes (``sso.admin.importer``).

    The rows to write are kept here as JSON, in file order. ``done`` counts the rows already
    written: it moves in the transaction that writes a batch, so a worker that dies mid-way
    leaves the job where its last batch committed, and the next worker (once the claim has
    lapsed) goes on from there without writing a row twice.
    """

    __tablename__ = "import_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The super admin who started it: the job acts in their remit, checked again when it runs.
    admin_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    actor: Mapped[str] = mapped_column(String(128))
    filename: Mapped[str] = mapped_column(String(255), default="")
    #: The language of the invitations (the admin's at the time of the import).
    locale: Mapped[str | None] = mapped_column(String(16))
    rows: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    total: Mapped[int] = mapped_column(Integer, default=0)
    #: Rows written or refused so far (the next row to write is ``rows[done]``).
    done: Mapped[int] = mapped_column(Integer, default=0)
    imported: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    #: Rows the dry run refused (not in ``rows``).
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    #: queued, running, done or failed.
    status: Mapped[str] = mapped_column(String(8), default="queued", index=True)
    #: The refused rows (line, username, error), the first ones only.
    failures: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: Why the whole job failed, if it did.
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Who holds the job: only that worker may write its next batch, until ``claimed_until``.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
