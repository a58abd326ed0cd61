"""The SSO session: who signed in to this browser, when, and each proof they gave."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..dbtypes import UTCDateTime, utcnow
from ..extensions import db
from ..users.models import User

#: Authentication Context Class References this provider asserts (advertised in discovery).
ACR_SINGLE_FACTOR = "urn:sso:loa:1"
ACR_MULTI_FACTOR = "urn:sso:loa:2"
ACR_VALUES = (ACR_SINGLE_FACTOR, ACR_MULTI_FACTOR)

#: What each kind of proof adds to ``amr`` (RFC 8176 values where one exists). A recovery code
#: is a one-time password; a remembered browser stands in for a second factor without being
#: one, so it adds nothing.
AMR_OF = {
    "pwd": "pwd",
    "otp": "otp",
    "recovery": "otp",
    "sms": "sms",
    "hwk": "hwk",
    "swk": "swk",
    "qr": "qr",
    "device": None,
}
#: ``amr`` values that count as a second factor.
SECOND_FACTOR_AMR = frozenset({"otp", "hwk", "swk", "sms"})
#: Proofs that satisfy a second-factor requirement (a remembered device only where the app's
#: policy lets it stand in for a code).
SECOND_FACTOR_PROOFS = frozenset({"otp", "recovery", "sms", "hwk", "swk", "device"})


@dataclass(frozen=True)
class Proof:
    """One thing the user proved in this session, and when (the newest of its kind is kept)."""

    method: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        # Microseconds kept: a proof is compared with when the request started.
        return {"m": self.method, "t": round(self.at.timestamp(), 6)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Proof:
        return cls(str(data["m"]), datetime.fromtimestamp(float(data["t"]), UTC))


def amr_of(proofs: list[Proof]) -> list[str]:
    """RFC 8176 ``amr``: each method once, in the order first proved, plus ``mfa`` when a
    second factor joined another method."""
    values = list(dict.fromkeys(
        value for proof in proofs if (value := AMR_OF.get(proof.method)) is not None))
    if SECOND_FACTOR_AMR.intersection(values) and len(values) > 1:
        values.append("mfa")
    return values


def acr_of(amr: list[str]) -> str:
    """Two kinds of proof, one of them a second factor, make a multi-factor sign-in."""
    return ACR_MULTI_FACTOR if "mfa" in amr else ACR_SINGLE_FACTOR


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
    #: When the user last proved who they are (``auth_time``); every sign-in and step-up
    #: moves it.
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Each proof of the session, ``[{"m": method, "t": unix time}]``, the newest per method:
    #: ``amr``, ``acr`` and whether a second factor is fresh enough are computed from it.
    proof_log: Mapped[list[dict[str, Any]]] = mapped_column("proofs", JSON, default=list)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    #: The apps (client ids) this session signed in to, in the order first reached: who
    #: hears of its end (back- and front-channel logout) and what the account page lists.
    client_ids: Mapped[list[str] | None] = mapped_column(JSON)
    #: Why it ended ("logout", "idle", "absolute", "user", "password_change", ...).
    end_reason: Mapped[str | None] = mapped_column(String(32))
    #: The browser it was opened in (``UserDevice.id``), when the browser had a device cookie.
    device_id: Mapped[int | None] = mapped_column(Integer)

    user: Mapped[User] = relationship(lazy="joined")

    def is_active(self, now: datetime) -> bool:
        return self.ended_at is None and self.expires_at > now

    @property
    def proofs(self) -> list[Proof]:
        return [Proof.from_json(entry) for entry in self.proof_log or []]

    def add_proofs(self, added: list[Proof]) -> None:
        """Record new proofs; a method proved again replaces its older entry."""
        kept = [p for p in self.proofs if all(p.method != a.method for a in added)]
        self.proof_log = [p.to_json() for p in [*kept, *added]]

    @property
    def amr(self) -> list[str]:
        return amr_of(self.proofs)

    @property
    def acr(self) -> str:
        return acr_of(self.amr)

    def second_factor(self, accepted: frozenset[str]) -> Proof | None:
        """The newest proof of one of the ``accepted`` second factors that the session holds
        beside a proof of another method (a code that was the only proof is a first factor;
        an SMS sign-in code followed by an authenticator's code is two)."""
        proofs = self.proofs
        found = [p for p in proofs if p.method in accepted
                 and any(other.method != p.method for other in proofs)]
        return max(found, key=lambda p: p.at) if found else None


class UserDevice(db.Model):  # type: ignore[name-defined,misc]
    """A browser that signed in to an account, recognised by a long-lived device cookie (its
    SHA-256 is kept, never the cookie): a sign-in from a browser not in this list is new."""

    __tablename__ = "user_devices"
    __table_args__ = (UniqueConstraint("user_id", "token_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(255))


class SessionSettings(db.Model):  # type: ignore[name-defined,misc]
    """Per-user choices about sessions: mail me when a new browser signs in (default on)."""

    __tablename__ = "session_settings"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    new_device_alert: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
