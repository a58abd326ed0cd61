"""App accounts: whether a user may use one app (client), and how that came to be."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..dbtypes import UTCDateTime, utcnow
from ..extensions import db
from ..users.models import User


class AppAccountStatus:
    #: An admin provisioned the user (``sso apps provision``); the first sign-in activates it.
    PROVISIONED = "provisioned"
    #: The user asked to use an ``approval`` app and waits for an admin.
    PENDING = "pending"
    ACTIVE = "active"
    #: An admin denied the request (``sso apps deny``).
    REFUSED = "refused"
    #: An admin took the access away (``sso apps revoke``); signing in does not bring it back.
    REVOKED = "revoked"


class AppAccount(db.Model):  # type: ignore[name-defined,misc]
    """One user's account in one app, activated through the SSO (DESIGN.md §3 step 4)."""

    __tablename__ = "app_accounts"
    __table_args__ = (UniqueConstraint("user_id", "client_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("clients.client_id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When the user first asked for access (``approval`` apps).
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the account became active (first sign-in, or approval).
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The last admin decision (provision, approve, deny, revoke): when and by whom.
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(128))

    user: Mapped[User] = relationship()

    def __repr__(self) -> str:
        return f"<AppAccount {self.user_id}@{self.client_id} {self.status}>"
