"""What an admin may see and change: the remit computed from the user's admin grants.

Every console page and every query asks the remit; a thing outside it is answered as if it
did not exist (404), so an app admin learns nothing of other apps' users.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from ..extensions import db
from ..users.models import User
from . import AdminError
from .models import APP_ADMIN, AUDITOR, ROLES, AdminGrant


@dataclass(frozen=True)
class Remit:
    user_id: int
    username: str
    super_admin: bool = False
    auditor: bool = False
    apps: frozenset[str] = field(default_factory=frozenset)

    @property
    def actor(self) -> str:
        """How the audit log names this admin."""
        return f"admin:{self.username}"

    @property
    def any(self) -> bool:
        return self.super_admin or self.auditor or bool(self.apps)

    @property
    def reads_everything(self) -> bool:
        return self.super_admin or self.auditor

    def may_read_app(self, client_id: str) -> bool:
        return self.reads_everything or client_id in self.apps

    def may_change_app(self, client_id: str) -> bool:
        return self.super_admin or client_id in self.apps

    @property
    def may_change_users(self) -> bool:
        """Create, edit, disable, import users: the super admin's; app admins act on their
        apps' accounts and roles only."""
        return self.super_admin


def of(user: User | None) -> Remit | None:
    """The remit of ``user``, or None when they are no admin of any kind."""
    if user is None or user.status != "active":
        return None
    grants = db.session.scalars(select(AdminGrant).where(AdminGrant.user_id == user.id)).all()
    remit = Remit(
        user_id=user.id, username=user.username, super_admin=bool(user.is_admin),
        auditor=any(g.role == AUDITOR for g in grants),
        apps=frozenset(g.client_id for g in grants if g.role == APP_ADMIN and g.client_id),
    )
    return remit if remit.any else None


def grant(user: User, role: str, client_id: str | None, *, actor: str) -> AdminGrant:
    """Give ``user`` an admin remit (flushes; the caller commits and audits)."""
    if role not in ROLES:
        raise AdminError(f"unknown admin role {role!r}")
    if role == APP_ADMIN and not client_id:
        raise AdminError("an app admin needs the app")
    if role == AUDITOR:
        client_id = None
    found = db.session.scalar(select(AdminGrant).where(
        AdminGrant.user_id == user.id, AdminGrant.role == role,
        AdminGrant.client_id.is_(None) if client_id is None
        else AdminGrant.client_id == client_id))
    if found is not None:
        return found
    row = AdminGrant(user_id=user.id, role=role, client_id=client_id, granted_by=actor)
    db.session.add(row)
    db.session.flush()
    return row


def revoke(user: User, role: str, client_id: str | None) -> bool:
    found = db.session.scalars(select(AdminGrant).where(
        AdminGrant.user_id == user.id, AdminGrant.role == role)).all()
    gone = [g for g in found if role == AUDITOR or g.client_id == client_id]
    for row in gone:
        db.session.delete(row)
    return bool(gone)


def grants_of(user_id: int) -> list[AdminGrant]:
    return list(db.session.scalars(select(AdminGrant).where(AdminGrant.user_id == user_id)
                                   .order_by(AdminGrant.role, AdminGrant.client_id)))
