"""Users and their roles in each app: the data every layer above reads."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..dbtypes import UTCDateTime, utcnow
from ..extensions import db


class UserStatus:
    INVITED = "invited"
    ACTIVE = "active"
    PENDING = "pending"
    LOCKED = "locked"
    DISABLED = "disabled"


class User(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The OIDC ``sub``: stable, opaque, never reassigned, never the username.
    subject: Mapped[str] = mapped_column(
        String(36), unique=True, default=lambda: str(uuid.uuid4())
    )
    #: Stored lower-case; sign-in accepts any case.
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    phone: Mapped[str | None] = mapped_column(String(32))
    phone_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str | None] = mapped_column(String(128))
    locale: Mapped[str | None] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=UserStatus.ACTIVE)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: An initial password set by an admin: the next sign-in must replace it.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False,
                                                       server_default=false())

    roles: Mapped[list[AppRole]] = relationship(
        secondary="user_roles", back_populates="users"
    )

    def __repr__(self) -> str:
        return f"<User {self.id} {self.username}>"

    def get_user_id(self) -> str:
        """Authlib's hook: the ``sub`` of tokens issued for this user."""
        return self.subject

    def roles_in(self, client_id: str) -> list[str]:
        return sorted(role.name for role in self.roles if role.client_id == client_id)


class AppRole(db.Model):  # type: ignore[name-defined,misc]
    """A role defined by one app (client); its meaning belongs to that app."""

    __tablename__ = "app_roles"
    __table_args__ = (UniqueConstraint("client_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("clients.client_id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(255))

    users: Mapped[list[User]] = relationship(secondary="user_roles", back_populates="roles")


class UserRole(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("app_roles.id", ondelete="CASCADE"), primary_key=True
    )
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
