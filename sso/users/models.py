"""Users and their roles in each app: the data every layer above reads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CompoundSelect,
    ForeignKey,
    Integer,
    Select,
    String,
    UniqueConstraint,
    bindparam,
    event,
    false,
    select,
    union,
)
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, relationship

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
        """The user's effective roles in the app, sorted: granted directly or through any
        group the user is in, that group's parents included (one statement).

        Remembered in the session until it next writes, commits or rolls back, as the
        ``roles`` relationship was: a token response asks twice (access and ID token)."""
        session = db.session()
        memo: dict[tuple[int, str], list[str]] = session.info.setdefault(_ROLES_MEMO, {})
        if memo and _role_changes_pending(session):
            memo.clear()  # changes the query's autoflush would write first
        key = (self.id, client_id)
        if key not in memo:
            memo[key] = roles_of(self.id, client_id)
        return list(memo[key])


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


class Group(db.Model):  # type: ignore[name-defined,misc]
    """A group (department): its members inherit its roles, and those of its parent groups."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The key an operator types (``sso groups add finance alice``): lower-case, unique.
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(String(255))
    #: Departments nest: a member of a child inherits the parent's roles too. A parent with
    #: children cannot be deleted (RESTRICT); the service refuses a cycle.
    parent_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("groups.id", ondelete="RESTRICT"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    parent: Mapped[Group | None] = relationship(remote_side=[id])
    roles: Mapped[list[AppRole]] = relationship(secondary="group_roles",
                                                order_by="AppRole.client_id, AppRole.name")

    def __repr__(self) -> str:
        return f"<Group {self.id} {self.name}>"


class GroupMember(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    #: Indexed on its own: "the groups of this user" is the token path's lookup.
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GroupRole(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "group_roles"

    group_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("app_roles.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def groups_reached(user_id: Any) -> Any:
    """A recursive CTE of the ids of the groups ``user_id`` is in, and of their ancestors.

    ``UNION`` (not ``UNION ALL``) makes the recursion stop at a group already reached, so even
    a cycle that slipped past the service cannot loop."""
    reach = (select(GroupMember.group_id.label("group_id"))
             .where(GroupMember.user_id == user_id)
             .cte("groups_reached", recursive=True))
    return reach.union(
        select(Group.parent_id).join(reach, Group.id == reach.c.group_id)
        .where(Group.parent_id.is_not(None)))


def effective_role_ids(user_id: Any) -> CompoundSelect:
    """The ids of the roles ``user_id`` holds: direct grants and those of every group reached."""
    reach = groups_reached(user_id)
    return union(
        select(UserRole.role_id).where(UserRole.user_id == user_id),
        select(GroupRole.role_id).where(GroupRole.group_id.in_(select(reach.c.group_id))),
    )


def _roles_in_statement() -> Select[tuple[str]]:
    user_id = bindparam("roles_user")
    return (select(AppRole.name)
            .where(AppRole.client_id == bindparam("roles_client"),
                   AppRole.id.in_(effective_role_ids(user_id)))
            .order_by(AppRole.name))


#: Built once: every token with the ``roles`` scope asks.
ROLES_IN = _roles_in_statement()


def roles_of(user_id: int, client_id: str) -> list[str]:
    """The names of the user's effective roles in the app, sorted (one statement)."""
    return list(db.session.scalars(ROLES_IN, {"roles_user": user_id,
                                               "roles_client": client_id}))

_ROLES_MEMO = "sso_roles_in"


#: What a flush must write for the roles to change (a user's ``roles`` collection too).
_ROLE_MODELS = (User, AppRole, UserRole, Group, GroupMember, GroupRole)
_ROLE_TABLES = frozenset(model.__tablename__ for model in _ROLE_MODELS)


def _forget_roles(session: Session, *_args: Any) -> None:
    session.info.pop(_ROLES_MEMO, None)


def _role_changes_pending(session: Session) -> bool:
    return any(isinstance(obj, _ROLE_MODELS)
               for obj in (*session.new, *session.dirty, *session.deleted))


def _forget_roles_after_flush(session: Session, *_args: Any) -> None:
    """A flush of other rows (a refresh token, an audit event) keeps what was read."""
    if _ROLES_MEMO in session.info and _role_changes_pending(session):
        _forget_roles(session)


def _forget_roles_on_write(state: ORMExecuteState) -> None:
    """An INSERT, UPDATE or DELETE statement of a role table (or of one it cannot name)."""
    if state.is_select or _ROLES_MEMO not in state.session.info:
        return
    table = getattr(state.statement, "table", None)
    if table is not None and getattr(table, "name", None) not in _ROLE_TABLES:
        return
    _forget_roles(state.session)


for _name in ("after_commit", "after_rollback", "after_soft_rollback"):
    event.listen(Session, _name, _forget_roles)
event.listen(Session, "after_flush", _forget_roles_after_flush)
event.listen(Session, "do_orm_execute", _forget_roles_on_write)
