"""A new mobile number, confirmed by a 6-digit code sent by SMS to that number.

The pending change lives in Redis (short-lived state, DESIGN.md §5), one per user: the new
number and the code, bound to the user and the number, as :mod:`sso.onetimecode` keeps one
(used once, at most :data:`ATTEMPTS` guesses ever compared). It lives :data:`TTL` seconds.
Asking again replaces the pending change (and its code).

Whether another account already has the number is not looked at when the code is sent (the
answer is the same for every number, so the page names no one's number); it is looked at
when the right code comes back, and the change is then refused with a neutral message.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from .. import onetimecode
from ..extensions import db, get_redis
from ..users.models import User
from ..users.service import PHONE_PATTERN, normalise_phone

#: Tries per code, and its life in seconds.
ATTEMPTS = 5
TTL = 10 * 60

OK, WRONG, GONE, TAKEN = onetimecode.OK, onetimecode.WRONG, onetimecode.GONE, "taken"
PURPOSE = "phone-change"


@dataclass(frozen=True)
class Check:
    outcome: str
    phone: str | None = None
    tries_left: int = 0


def valid_phone(value: str) -> str | None:
    """``value`` normalised as everywhere else (spaces, brackets and dashes dropped), or None
    if it is not a mobile number (6 to 15 digits, optionally after a +)."""
    phone = normalise_phone(value[:64])
    return phone if phone and PHONE_PATTERN.match(phone) else None


def _key(user_id: int) -> str:
    return get_redis().key("selfservice", "phone", str(user_id))


def start(user: User, phone: str) -> str:
    """Open (or replace) ``user``'s pending change to ``phone``; return the code to send."""
    code = onetimecode.new_code()
    onetimecode.keep(_key(user.id), onetimecode.mac(PURPOSE, user.id, phone, code=code), TTL,
                     phone=phone)
    return code


def pending(user_id: int) -> str | None:
    """The number ``user_id`` is changing to, while a code for it is live."""
    raw = get_redis().client.hget(_key(user_id), "phone")
    return raw.decode() if isinstance(raw, bytes) else raw


def cancel(user_id: int) -> None:
    get_redis().client.delete(_key(user_id))


def check(user: User, code: str) -> Check:
    """Count one try of ``code`` for ``user``'s pending change; on success it is used up,
    and the outcome is :data:`TAKEN` if another account has the number by now."""
    phone = pending(user.id) or ""
    checked = onetimecode.check(
        _key(user.id), onetimecode.mac(PURPOSE, user.id, phone, code=onetimecode.typed(code)),
        ATTEMPTS, "phone")
    outcome, found, left = checked.outcome, checked.value, checked.tries_left
    if outcome == OK and found != phone:  # replaced between the two reads: not this code
        return Check(GONE)
    if outcome == OK and taken(found, user.id):
        return Check(TAKEN, found)
    return Check(outcome, found or None, int(left))


def taken(phone: str, user_id: int) -> bool:
    """Whether an account other than ``user_id`` has ``phone``."""
    return db.session.scalar(select(User.id).where(
        User.phone == phone, User.id != user_id).limit(1)) is not None


def change(user: User, phone: str) -> str | None:
    """Make ``phone`` the user's verified number; return the previous number, if any."""
    previous = user.phone
    user.phone, user.phone_verified = phone, True
    return previous if previous and previous != phone else None


def ending(phone: str) -> str:
    """The last digits of a number, as a notice names it."""
    return phone[-4:]
