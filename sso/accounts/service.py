"""Create users, check passwords, manage roles. No Flask request in here."""

from __future__ import annotations

import re

from flask import current_app
from sqlalchemy import func, or_, select

from .. import audit
from ..audit import Origin
from ..dbtypes import utcnow
from ..extensions import db
from ..security import PasswordHashing
from . import lockout
from .models import AppRole, User, UserRole, UserStatus

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
PHONE_PATTERN = re.compile(r"^\+?[0-9]{6,15}$")
ROLE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class AccountError(ValueError):
    """A request about accounts that cannot be carried out; the message is for the operator."""


def passwords() -> PasswordHashing:
    return current_app.extensions["sso_passwords"]  # type: ignore[no-any-return]


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


def create_user(
    username: str,
    *,
    email: str | None = None,
    password: str | None = None,
    phone: str | None = None,
    name: str | None = None,
    is_admin: bool = False,
    status: str = UserStatus.ACTIVE,
    origin: Origin | None = None,
    actor_id: int | None = None,
) -> User:
    username = normalise_username(username)
    email = normalise_email(email)
    phone = normalise_phone(phone)
    if not USERNAME_PATTERN.match(username):
        raise AccountError("username: 2-64 characters, letters, digits, '.', '_' or '-'")
    if email and not EMAIL_PATTERN.match(email):
        raise AccountError("email: not a valid address")
    if phone and not PHONE_PATTERN.match(phone):
        raise AccountError("phone: digits only, optionally with a leading +")
    taken = db.session.scalar(select(func.count()).select_from(User).where(or_(
        User.username == username,
        User.email == username,
        *([User.email == email, User.username == email] if email else []),
    )))
    if taken:
        raise AccountError("a user with that username or email already exists")
    user = User(username=username, email=email, phone=phone, name=name, is_admin=is_admin,
                status=status, email_verified=False)
    if password is not None:
        user.password_hash = passwords().hash(password)
        user.password_changed_at = utcnow()
    db.session.add(user)
    db.session.flush()
    audit.record("user.create", origin=origin, user_id=user.id, actor_id=actor_id,
                 admin=is_admin)
    return user


def authenticate(login: str, password: str, origin: Origin | None = None) -> User | None:
    """The user if ``password`` is theirs and the account may sign in, else None.

    Unknown users cost the same argon2 time as known ones and get the same answer, so neither
    the message nor the timing tells an attacker which usernames exist.
    """
    user = find_by_login(login) if len(password) <= 1024 else None
    hasher = passwords()
    ok = hasher.verify(user.password_hash if user else None, password[:1024])
    if user is not None and lockout.locked_for(user.id):
        # A locked account answers like a wrong password: the lock is not an oracle.
        audit.record("signin.password", audit.FAILURE, origin=origin, user_id=user.id,
                     reason="locked")
        return None
    if not ok or user is None:
        audit.record("signin.password", audit.FAILURE, origin=origin,
                     user_id=user.id if user else None, subject=login[:254])
        if user is not None:
            lockout.register_failure(user.id, origin)
        return None
    if user.status != UserStatus.ACTIVE:
        audit.record("signin.password", audit.FAILURE, origin=origin, user_id=user.id,
                     reason=user.status)
        return None
    lockout.clear_failures(user.id)
    if hasher.needs_rehash(user.password_hash or ""):
        user.password_hash = hasher.hash(password)
    audit.record("signin.password", origin=origin, user_id=user.id)
    return user


def set_password(user: User, password: str, origin: Origin | None = None) -> None:
    user.password_hash = passwords().hash(password)
    user.password_changed_at = utcnow()
    audit.record("user.password_set", origin=origin, user_id=user.id)


# Roles per app.


def define_role(client_id: str, name: str, description: str | None = None) -> AppRole:
    if not ROLE_PATTERN.match(name):
        raise AccountError("role: 1-64 characters, letters, digits, '.', '_', ':' or '-'")
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


def grant_role(user: User, client_id: str, name: str) -> None:
    role = db.session.scalar(
        select(AppRole).where(AppRole.client_id == client_id, AppRole.name == name)
    )
    if role is None:
        raise AccountError(f"the app has no role named {name!r}; define it first")
    if role not in user.roles:
        user.roles.append(role)
        audit.record("role.grant", user_id=user.id, client_id=client_id, role=name)


def revoke_role(user: User, client_id: str, name: str) -> None:
    for role in list(user.roles):
        if role.client_id == client_id and role.name == name:
            user.roles.remove(role)
            audit.record("role.revoke", user_id=user.id, client_id=client_id, role=name)


def delete_role(client_id: str, name: str) -> None:
    role = db.session.scalar(
        select(AppRole).where(AppRole.client_id == client_id, AppRole.name == name)
    )
    if role is None:
        raise AccountError(f"the app has no role named {name!r}")
    db.session.execute(db.delete(UserRole).where(UserRole.role_id == role.id))
    db.session.delete(role)
    audit.record("role.delete", client_id=client_id, role=name)
