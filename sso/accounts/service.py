"""Create users with a password, check passwords. No Flask request in here."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import func, or_, select

from .. import audit
from ..audit import Origin
from ..dbtypes import utcnow
from ..extensions import db
from ..security import PasswordHashing
from ..users.models import User, UserStatus
from ..users.service import (
    EMAIL_PATTERN,
    PHONE_PATTERN,
    USERNAME_PATTERN,
    UserError,
    find_by_login,
    normalise_email,
    normalise_phone,
    normalise_username,
)
from . import lockout, policy


class AccountError(UserError):
    """A request about accounts that cannot be carried out; the message is for the operator."""


def passwords() -> PasswordHashing:
    return current_app.extensions["sso_passwords"]  # type: ignore[no-any-return]



def check_new_user(username: str, email: str | None, password: str) -> None:
    """What :func:`create_user` checks before it writes, for a registration that will not
    create anything (its email address has an account): the same errors, the same hash."""
    username = normalise_username(username)
    email = normalise_email(email)
    if not USERNAME_PATTERN.match(username):
        raise AccountError("username: 2-64 characters, letters, digits, '.', '_' or '-'")
    if email and not EMAIL_PATTERN.match(email):
        raise AccountError("email: not a valid address")
    taken = db.session.scalar(select(func.count()).select_from(User).where(or_(
        User.username == username, User.email == username)))
    if taken:
        raise AccountError("a user with that username or email already exists")
    policy.check(password, current_app.config, passwords(), username=username, email=email)
    passwords().hash(password)


def create_user(
    username: str,
    *,
    email: str | None = None,
    password: str | None = None,
    phone: str | None = None,
    name: str | None = None,
    is_admin: bool = False,
    status: str = UserStatus.ACTIVE,
    must_change: bool = False,
    origin: Origin | None = None,
    actor_id: int | None = None,
) -> User:
    """Create a user; a given password must satisfy the policy (:mod:`.policy`)."""
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
    if password is not None:
        policy.check(password, current_app.config, passwords(), username=username, email=email)
    user = User(username=username, email=email, phone=phone, name=name, is_admin=is_admin,
                status=status, email_verified=False,
                must_change_password=must_change and password is not None)
    if password is not None:
        user.password_hash = passwords().hash(password)
        user.password_changed_at = utcnow()
    db.session.add(user)
    db.session.flush()
    if user.password_hash:
        policy.remember(user, user.password_hash, current_app.config)
    audit.record("user.create", origin=origin, user_id=user.id, actor_id=actor_id,
                 admin=is_admin, status=status, must_change=user.must_change_password)
    return user


@dataclass(frozen=True)
class SignInResult:
    """The outcome of a password check.

    ``reason`` is "ok", "invalid" (unknown user or wrong password: one generic answer),
    "locked" (too many failures; answered the same way for names nobody has), or the
    account's state ("invited", "pending", "disabled"), which is only reported after the
    right password was given.
    """

    user: User | None
    reason: str
    locked_seconds: int = 0

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


def authenticate(login: str, password: str, origin: Origin | None = None) -> SignInResult:
    """Check ``password`` for ``login`` and say whether (and why not) they may sign in.

    Unknown users cost the same argon2 time as known ones and get the same answer, so neither
    the message nor the timing tells an attacker which usernames exist. A locked name (known
    or not) is not checked at all, so guesses during a lock learn nothing.
    """
    user = find_by_login(login) if len(password) <= 1024 else None
    subject: lockout.Subject = user.id if user else lockout.unknown_subject(login)
    hasher = passwords()
    locked = lockout.locked_for(subject)
    if locked:
        audit.record("signin.password", audit.FAILURE, origin=origin,
                     user_id=user.id if user else None, subject=login[:254], reason="locked")
        return SignInResult(None, "locked", locked)
    ok = hasher.verify(user.password_hash if user else None, password[:1024])
    if not ok or user is None:
        audit.record("signin.password", audit.FAILURE, origin=origin,
                     user_id=user.id if user else None, subject=login[:254])
        lockout.register_ip_failure(origin.ip if origin else None, subject)
        seconds = lockout.register_failure(subject, origin)
        if seconds:
            return SignInResult(None, "locked", seconds)
        return SignInResult(None, "invalid")
    lockout.clear_failures(user.id, ip=origin.ip if origin else None)
    if user.status != UserStatus.ACTIVE:
        audit.record("signin.password", audit.FAILURE, origin=origin, user_id=user.id,
                     reason=user.status)
        return SignInResult(None, "locked_by_admin" if user.status == UserStatus.LOCKED
                            else user.status)
    if hasher.needs_rehash(user.password_hash or ""):
        user.password_hash = hasher.hash(password)
    audit.record("signin.password", origin=origin, user_id=user.id)
    return SignInResult(user, "ok")


def set_password(user: User, password: str, origin: Origin | None = None, *,
                 must_change: bool = False, reason: str = "set",
                 actor: str | None = None) -> None:
    """Set a password that satisfies the policy (raises :class:`policy.PasswordRejected`)."""
    config = current_app.config
    policy.check(password, config, passwords(), user=user)
    user.password_hash = passwords().hash(password)
    user.password_changed_at = utcnow()
    user.must_change_password = must_change
    policy.remember(user, user.password_hash, config)
    audit.record("user.password_set", origin=origin, user_id=user.id, reason=reason,
                 actor=actor, must_change=must_change)
