"""Per-account brute-force protection: consecutive failures lock the account for a while.

Any failed proof of identity (password, one-time code) counts. After ``LOCKOUT_THRESHOLD``
consecutive failures the account is locked for ``LOCKOUT_SECONDS``, doubling with each further
lock within a day (15 min, 30 min, 1 h, ...). A success clears the count. Counters live in Redis;
if Redis is unreachable nobody is locked and the degradation is logged, so an outage of the
counter store never stops people from signing in.
"""

from __future__ import annotations

import logging

import redis
from flask import current_app

from .. import audit
from ..audit import Origin
from ..extensions import get_redis

log = logging.getLogger(__name__)

#: How long the number of past locks is remembered (it makes the next lock longer).
LOCK_MEMORY = 24 * 3600
MAX_LOCK_SECONDS = 24 * 3600


def _keys(user_id: int) -> tuple[str, str, str]:
    store = get_redis()
    uid = str(user_id)
    return (store.key("lockout", "failures", uid), store.key("lockout", "locked", uid),
            store.key("lockout", "locks", uid))


def locked_for(user_id: int) -> int:
    """Seconds the account stays locked (0 when it is not locked)."""
    _failures, locked, _locks = _keys(user_id)
    try:
        ttl = int(get_redis().client.ttl(locked))
    except redis.RedisError as exc:
        log.warning("lockout check skipped, Redis unavailable: %s", exc)
        return 0
    return max(ttl, 0)


def register_failure(user_id: int, origin: Origin | None = None, method: str = "password") -> int:
    """Count a failure; return the lock duration in seconds if this failure locked the account."""
    config = current_app.config
    failures, locked, locks = _keys(user_id)
    client = get_redis().client
    try:
        pipe = client.pipeline()
        pipe.incr(failures)
        pipe.expire(failures, LOCK_MEMORY)
        count, _ = pipe.execute()
        if int(count) < config["LOCKOUT_THRESHOLD"]:
            return 0
        pipe = client.pipeline()
        pipe.incr(locks)
        pipe.expire(locks, LOCK_MEMORY)
        pipe.delete(failures)
        previous_locks, _, _ = pipe.execute()
        seconds = min(config["LOCKOUT_SECONDS"] * 2 ** (int(previous_locks) - 1),
                      MAX_LOCK_SECONDS)
        client.set(locked, "1", ex=seconds)
    except redis.RedisError as exc:
        log.warning("lockout counter skipped, Redis unavailable: %s", exc)
        return 0
    audit.record("account.locked", audit.FAILURE, origin=origin, user_id=user_id,
                 seconds=seconds, method=method)
    return seconds


def clear_failures(user_id: int) -> None:
    """A successful sign-in: forget the consecutive failures (not the lock history)."""
    failures, _locked, _locks = _keys(user_id)
    try:
        get_redis().client.delete(failures)
    except redis.RedisError as exc:
        log.warning("lockout reset skipped, Redis unavailable: %s", exc)


def unlock(user_id: int, origin: Origin | None = None) -> None:
    """An admin lifts the lock and the history (``sso users unlock``)."""
    get_redis().client.delete(*_keys(user_id))
    audit.record("account.unlock", origin=origin, user_id=user_id)
