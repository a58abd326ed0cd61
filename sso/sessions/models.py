"""The SSO session: who signed in to this browser, when, and how."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..dbtypes import UTCDateTime, utcnow
from ..extensions import db
from ..users.models import User


class SSOSession(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "sso_sessions"

    #: Public session id, the ``sid`` claim (OIDC Front/Back-Channel Logout).
    id: Mapped[str] = mapped_column(String(43), primary_key=True)
    #: SHA-256 of the secret in the browser's cookie; the cookie itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When the user last proved who they are (``auth_time``); step-up and re-login move it.
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    acr: Mapped[str] = mapped_column(String(64))
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(255))

    user: Mapped[User] = relationship(lazy="joined")

    def is_active(self, now: datetime) -> bool:
        return self.ended_at is None and self.expires_at > now
