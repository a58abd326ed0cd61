"""One-time sign-in codes sent by SMS, kept in Redis (DESIGN.md §5: short-lived codes).

A code belongs to an *attempt*: a random id the page carries between "send" and "verify".
The attempt holds the user (or nobody, for a name that matched no one, so the answer and
the count of tries are the same either way: no enumeration), an HMAC of the code keyed with
the provider's secret (the code itself is never stored), and the tries so far. Checking is
one Lua script: it counts the try, compares, and deletes the attempt on success or on the
last try, so a code is used once and at most :data:`ATTEMPTS` guesses are ever compared.
Asking for a new code for a user deletes the previous attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from ..extensions import db, get_redis
from ..users.models import User, UserStatus
from ..users.service import find_by_login

#: Tries per code, and its life in seconds.
ATTEMPTS = 5
TTL = 10 * 60

OK, WRONG, GONE = "ok", "wrong", "gone"

# KEYS[1] the attempt; ARGV[1] the HMAC of the typed code, ARGV[2] the tries allowed.
# Returns {outcome, user id or "" (for the audit log only), tries left}.
_CHECK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'gone', '', 0} end
local tries = redis.call('HINCRBY', KEYS[1], 'tries', 1)
local allowed = tonumber(ARGV[2])
local user = redis.call('HGET', KEYS[1], 'user')
if tries > allowed then
  redis.call('DEL', KEYS[1])
  return {'gone', user, 0}
end
if user ~= '' and redis.call('HGET', KEYS[1], 'mac') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return {'ok', user, allowed - tries}
end
if tries >= allowed then redis.call('DEL', KEYS[1]) end
return {'wrong', user, allowed - tries}
"""


@dataclass(frozen=True)
class Check:
    outcome: str
    user_id: int | None = None
    tries_left: int = 0


def _attempt_key(attempt: str) -> str:
    return get_redis().key("smscode", "attempt", attempt)


def _user_key(user_id: int) -> str:
    return get_redis().key("smscode", "user", str(user_id))


def _mac(attempt: str, code: str) -> str:
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, f"sms-sign-in:{attempt}:{code}".encode(), hashlib.sha256).hexdigest()


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
    code = f"{secrets.randbelow(10**6):06d}" if user is not None else None
    pipe = store.client.pipeline(transaction=True)
    pipe.hset(_attempt_key(attempt), mapping={
        "user": str(user.id) if user is not None else "",
        # Nobody's attempt gets a MAC no code can match.
        "mac": _mac(attempt, code) if code else secrets.token_hex(32),
        "tries": 0,
    })
    pipe.expire(_attempt_key(attempt), TTL)
    if user is not None:
        pipe.get(_user_key(user.id))
        pipe.set(_user_key(user.id), attempt, ex=TTL)
    results = pipe.execute()
    previous = results[2] if user is not None else None
    if previous:
        # A new code retires the previous one.
        store.client.delete(_attempt_key(previous.decode()))
    return attempt, code


def check(attempt: str, code: str) -> Check:
    """Count one try of ``code`` for ``attempt``; on success the attempt is used up."""
    code = "".join(code.split())
    if not attempt or len(attempt) > 64:
        return Check(GONE)
    if len(code) != 6 or not code.isdigit():
        # Still a try: a malformed code must not be a free probe of the count.
        code = "x"
    store = get_redis()
    outcome, user, left = store.client.eval(
        _CHECK, 1, _attempt_key(attempt), _mac(attempt, code), ATTEMPTS)
    outcome = outcome.decode() if isinstance(outcome, bytes) else outcome
    user = user.decode() if isinstance(user, bytes) else user
    user_id = int(user) if user else None
    if outcome == OK and user_id is not None:
        store.client.delete(_user_key(user_id))
    return Check(outcome, user_id, int(left))
