"""Find users and manage their roles per app. No Flask request in here."""

from __future__ import annotations

import re

from sqlalchemy import or_, select

from .. import audit
from ..extensions import db
from .models import AppRole, User, UserRole

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
PHONE_PATTERN = re.compile(r"^\+?[0-9]{6,15}$")
ROLE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class UserError(ValueError):
    """A request about users that cannot be carried out; the message is for the operator."""


def normalise_username(username: str) -> str:
    return username.strip().lower()


def normalise_email(email: str | None) -> str | None:
    return email.strip().lower() if email and email.strip() else None


def normalise_phone(phone: str | None) -> str | None:
    if not phone or not phone.strip():
        return None
    return re.sub(r"[\s()-]", "", phone.strip())


def find_by_login(login: str) -> User | None:
    """The user whose username or email is ``login`` (any case)."""
    key = login.strip().lower()
    if not key or len(key) > 254:
        return None
    return db.session.scalar(select(User).where(or_(User.username == key, User.email == key)))


def get(user_id: int) -> User | None:
    return db.session.get(User, user_id)


def by_subject(subject: str) -> User | None:
    """The user whose OIDC ``sub`` this is."""
    return db.session.scalar(select(User).where(User.subject == subject))


# Roles per app.


def define_role(client_id: str, name: str, description: str | None = None) -> AppRole:
    if not ROLE_PATTERN.match(name):
        raise UserError("role: 1-64 characters, letters, digits, '.', '_', ':' or '-'")
    role = db.session.scalar(
        select(AppRole).where(AppRole.client_id == client_id, AppRole.name == name)
    )
    if role is None:
        role = AppRole(client_id=client_id, name=name, description=description)
        db.session.add(role)
        db.session.flush()
        audit.record("role.define", client_id=client_id, role=name)
    elif description is not None:
        role.description = description
    return role


def roles_of_app(client_id: str) -> list[AppRole]:
    return list(db.session.scalars(
        select(AppRole).where(AppRole.client_id == client_id).order_by(AppRole.name)
    ))


def find_role(client_id: str, name: str) -> AppRole | None:
    return db.session.scalar(
        select(AppRole).where(AppRole.client_id == client_id, AppRole.name == name)
    )


def grant_role(user: User, client_id: str, name: str) -> None:
    role = find_role(client_id, name)
    if role is None:
        raise UserError(f"the app has no role named {name!r}; define it first")
    if role not in user.roles:
        user.roles.append(role)
        audit.record("role.grant", user_id=user.id, client_id=client_id, role=name)


def revoke_role(user: User, client_id: str, name: str) -> None:
    for role in list(user.roles):
        if role.client_id == client_id and role.name == name:
            user.roles.remove(role)
            audit.record("role.revoke", user_id=user.id, client_id=client_id, role=name)


def delete_role(client_id: str, name: str) -> None:
    role = find_role(client_id, name)
    if role is None:
        raise UserError(f"the app has no role named {name!r}")
    db.session.execute(db.delete(UserRole).where(UserRole.role_id == role.id))
    db.session.delete(role)
    audit.record("role.delete", client_id=client_id, role=name)
