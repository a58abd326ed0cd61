"""Six-digit codes sent to a person (by SMS or mail) to prove they hold a number or an address.

A code lives in Redis (short-lived state, DESIGN.md §5) as one hash: an HMAC of the code keyed
with the provider's secret and bound to what the code is for (the code itself is never
stored), what it confirms (a user id, a new number), and the tries so far. Checking is one Lua
script: it counts the try, compares, and deletes the hash on success or on the last try, so a
code works once and at most ``allowed`` guesses are ever compared, however many requests race.
The SMS sign-in (``sso.smscode``), the new mobile number (``sso.selfservice.phone``) and the
picture challenge's emailed alternative (``sso.accounts.captcha``) keep their codes here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from flask import current_app

from .extensions import get_redis

OK, WRONG, GONE = "ok", "wrong", "gone"

# KEYS[1] the code's hash; ARGV[1] the HMAC of the typed code, ARGV[2] the tries allowed,
# ARGV[3] the field whose value is returned. Returns {outcome, that value or "", tries left}.
_CHECK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'gone', '', 0} end
local tries = redis.call('HINCRBY', KEYS[1], 'tries', 1)
local allowed = tonumber(ARGV[2])
local value = redis.call('HGET', KEYS[1], ARGV[3]) or ''
if tries > allowed then
  redis.call('DEL', KEYS[1])
  return {'gone', value, 0}
end
if redis.call('HGET', KEYS[1], 'mac') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return {'ok', value, allowed - tries}
end
if tries >= allowed then redis.call('DEL', KEYS[1]) end
return {'wrong', value, allowed - tries}
"""


@dataclass(frozen=True)
class Check:
    outcome: str
    #: The value of the field asked for (what the code confirms), "" if none.
    value: str = ""
    tries_left: int = 0


def new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def mac(purpose: str, *bound: object, code: str) -> str:
    """The HMAC kept for ``code``, bound to ``purpose`` and to ``bound`` (ids, numbers)."""
    key = str(current_app.config["SECRET_KEY"]).encode()
    message = ":".join([purpose, *map(str, bound), code]).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def unmatchable() -> str:
    """A MAC no code matches: for a code sent to nobody, so that it is checked the same way."""
    return secrets.token_hex(32)


def typed(code: str) -> str:
    """The code as typed, without spaces; a malformed one becomes a value no code has (it is
    still a try: a malformed code must not be a free probe of the count)."""
    code = "".join(code.split())
    return code if len(code) == 6 and code.isdigit() else "x"


def keep(key: str, code_mac: str, ttl: int, pipe: Any = None, **fields: str) -> None:
    """Keep a code's MAC and ``fields`` under ``key`` for ``ttl`` seconds, replacing any code
    kept there before; in ``pipe`` if given (the caller executes it)."""
    run = pipe if pipe is not None else get_redis().client.pipeline(transaction=True)
    run.delete(key)
    run.hset(key, mapping={**fields, "mac": code_mac, "tries": 0})
    run.expire(key, ttl)
    if pipe is None:
        run.execute()


def check(key: str, code_mac: str, allowed: int, field: str = "mac") -> Check:
    """Count one try of the code whose MAC is ``code_mac``; on success it is used up."""
    outcome, value, left = get_redis().client.eval(_CHECK, 1, key, code_mac, allowed, field)
    return Check(_text(outcome), _text(value) if field != "mac" else "", int(left))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
