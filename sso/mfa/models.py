"""Second-factor records: TOTP authenticators, recovery codes, remembered devices, policy."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..dbtypes import UTCDateTime, utcnow
from ..extensions import db


class TotpAuthenticator(db.Model):  # type: ignore[name-defined,misc]
    """A confirmed authenticator app; one per user, so racing enrolments cannot both win."""

    __tablename__ = "mfa_totp"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    #: The base32 seed, encrypted (Fernet) with the first of ``MFA_ENCRYPTION_KEYS``.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The newest accepted time step; older steps are refused even if Redis forgot them.
    last_step: Mapped[int] = mapped_column(Integer, default=0)


class RecoveryCode(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "mfa_recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    #: SHA-256 of the normalised code; codes carry 80 random bits, so no slow hash is needed.
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RememberedDevice(db.Model):  # type: ignore[name-defined,misc]
    """A browser where the user asked not to be asked for a code for a while."""

    __tablename__ = "mfa_devices"

    id: Mapped[str] = mapped_column(String(22), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    #: SHA-256 of the random secret inside the signed cookie.
    token_hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(255))
    ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


class UserRequirement(db.Model):  # type: ignore[name-defined,misc]
    """An admin requires two-step verification of this user."""

    __tablename__ = "mfa_user_requirements"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RoleRequirement(db.Model):  # type: ignore[name-defined,misc]
    """Holders of this app role need two-step verification to sign in to that app."""

    __tablename__ = "mfa_role_requirements"

    role_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("app_roles.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
