"""Account records: single-use links and codes sent to users, and password history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..dbtypes import UTCDateTime, utcnow
from ..extensions import db


class AccountToken(db.Model):  # type: ignore[name-defined,misc]
    """A single-use proof sent to a user: an activation, reset or verification link or code.

    Only a hash is stored: SHA-256 of a link's random token, or an HMAC (keyed with the
    provider's secret) of a 6-digit code, which is also bound to the user and purpose.
    """

    __tablename__ = "account_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    #: "invite", "reset" or "verify" (self-registration's email check).
    purpose: Mapped[str] = mapped_column(String(16))
    #: "email" (a link) or "sms" (a code).
    channel: Mapped[str] = mapped_column(String(8))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: Set once, atomically, when redeemed or replaced by a newer one.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PasswordHistory(db.Model):  # type: ignore[name-defined,misc]
    """argon2id hashes of a user's recent passwords, so an old one is not set again."""

    __tablename__ = "password_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
