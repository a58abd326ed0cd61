"""A new mobile number, confirmed by a 6-digit code sent by SMS to that number.

The pending change lives in Redis (short-lived state, DESIGN.md §5), one per user: the new
number, an HMAC of the code keyed with the provider's secret and bound to the user and the
number (the code itself is never stored), and the tries so far. It lives :data:`TTL` seconds.
Checking is one Lua script: it counts the try, compares, and deletes the pending change on
success or on the last try, so a code works once and at most :data:`ATTEMPTS` guesses are
ever compared. Asking again replaces the pending change (and its code).

Whether another account already has the number is not looked at when the code is sent (the
answer is the same for every number, so the page names no one's number); it is looked at
when the right code comes back, and the change is then refused with a neutral message.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from ..extensions import db, get_redis
from ..users.models import User
from ..users.service import PHONE_PATTERN, normalise_phone

#: Tries per code, and its life in seconds.
ATTEMPTS = 5
TTL = 10 * 60

OK, WRONG, GONE, TAKEN = "ok", "wrong", "gone", "taken"

# KEYS[1] the pending change; ARGV[1] the HMAC of the typed code, ARGV[2] the tries allowed.
# Returns {outcome, the new number or "", tries left}.
_CHECK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'gone', '', 0} end
local tries = redis.call('HINCRBY', KEYS[1], 'tries', 1)
local allowed = tonumber(ARGV[2])
if tries > allowed then
  redis.call('DEL', KEYS[1])
  return {'gone', '', 0}
end
local phone = redis.call('HGET', KEYS[1], 'phone')
if redis.call('HGET', KEYS[1], 'mac') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return {'ok', phone, allowed - tries}
end
if tries >= allowed then redis.call('DEL', KEYS[1]) end
return {'wrong', phone, allowed - tries}
"""


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


def _mac(user_id: int, phone: str, code: str) -> str:
    key = str(current_app.config["SECRET_KEY"]).encode()
    message = f"phone-change:{user_id}:{phone}:{code}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def start(user: User, phone: str) -> str:
    """Open (or replace) ``user``'s pending change to ``phone``; return the code to send."""
    code = f"{secrets.randbelow(10**6):06d}"
    pipe = get_redis().client.pipeline(transaction=True)
    pipe.delete(_key(user.id))
    pipe.hset(_key(user.id), mapping={"phone": phone, "mac": _mac(user.id, phone, code),
                                      "tries": 0})
    pipe.expire(_key(user.id), TTL)
    pipe.execute()
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
    code = "".join(code.split())
    if len(code) != 6 or not code.isdigit():
        # Still a try: a malformed code must not be a free probe of the count.
        code = "x"
    store = get_redis().client
    phone = pending(user.id) or ""
    outcome, found, left = store.eval(_CHECK, 1, _key(user.id), _mac(user.id, phone, code),
                                      ATTEMPTS)
    outcome = outcome.decode() if isinstance(outcome, bytes) else outcome
    found = found.decode() if isinstance(found, bytes) else found
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
