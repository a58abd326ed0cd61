"""One-time sign-in codes sent by SMS, kept in Redis (DESIGN.md §5: short-lived codes).

A code belongs to an *attempt*: a random id the page carries between "send" and "verify".
The attempt holds the user (or nobody, for a name that matched no one, so the answer and
the count of tries are the same either way: no enumeration) and the code as
:mod:`sso.onetimecode` keeps one: used once, at most :data:`ATTEMPTS` guesses ever compared.
Asking for a new code for a user deletes the previous attempt.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select

from .. import onetimecode
from ..extensions import db, get_redis
from ..users.models import User, UserStatus
from ..users.service import find_by_login

#: Tries per code, and its life in seconds.
ATTEMPTS = 5
TTL = 10 * 60

OK, WRONG, GONE = onetimecode.OK, onetimecode.WRONG, onetimecode.GONE
PURPOSE = "sms-sign-in"


@dataclass(frozen=True)
class Check:
    outcome: str
    user_id: int | None = None
    tries_left: int = 0


def _attempt_key(attempt: str) -> str:
    return get_redis().key("smscode", "attempt", attempt)


def _user_key(user_id: int) -> str:
    return get_redis().key("smscode", "user", str(user_id))


def normalise_phone(value: str) -> str:
    return "".join(c for c in value if c.isdigit() or c == "+")


def find_user(login: str) -> User | None:
    """The active user with a verified phone that ``login`` names (username, email or that
    phone number), or None. Callers answer the same either way."""
    login = login.strip()[:254]
    user = find_by_login(login)
    if user is None:
        phone = normalise_phone(login)
        if len(phone) >= 6:
            found = db.session.scalars(select(User).where(
                User.phone == phone, User.phone_verified.is_(True)).limit(2)).all()
            user = found[0] if len(found) == 1 else None  # a shared number names no one
    if user is None or user.status != UserStatus.ACTIVE:
        return None
    if not (user.phone and user.phone_verified):
        return None
    return user


def start(user: User | None) -> tuple[str, str | None]:
    """Open an attempt for ``user`` (or for nobody); return its id and the code to send."""
    store = get_redis()
    attempt = secrets.token_urlsafe(24)
    code = onetimecode.new_code() if user is not None else None
    pipe = store.client.pipeline(transaction=True)
    # Nobody's attempt gets a MAC no code can match.
    onetimecode.keep(_attempt_key(attempt),
                     onetimecode.mac(PURPOSE, attempt, code=code) if code
                     else onetimecode.unmatchable(),
                     TTL, pipe, user=str(user.id) if user is not None else "")
    if user is not None:
        pipe.getset(_user_key(user.id), attempt)
        pipe.expire(_user_key(user.id), TTL)
    results = pipe.execute()
    previous = results[3] if user is not None else None
    if previous:
        # A new code retires the previous one.
        store.client.delete(_attempt_key(previous.decode()))
    return attempt, code


def check(attempt: str, code: str) -> Check:
    """Count one try of ``code`` for ``attempt``; on success the attempt is used up."""
    if not attempt or len(attempt) > 64:
        return Check(GONE)
    checked = onetimecode.check(
        _attempt_key(attempt),
        onetimecode.mac(PURPOSE, attempt, code=onetimecode.typed(code)), ATTEMPTS, "user")
    user_id = int(checked.value) if checked.value else None
    if checked.outcome == OK and user_id is not None:
        get_redis().client.delete(_user_key(user_id))
    return Check(checked.outcome, user_id, checked.tries_left)
