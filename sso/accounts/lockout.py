"""Per-account brute-force protection: consecutive failures lock the account for a while.

Any failed proof of identity (password, one-time code) counts. After ``LOCKOUT_THRESHOLD``
consecutive failures the account is locked for ``LOCKOUT_SECONDS``, doubling with each further
lock within a day (15 min, 30 min, 1 h, ...). A success clears the count. Counters live in Redis;
if Redis is unreachable nobody is locked and the degradation is logged, so an outage of the
counter store never stops people from signing in.

A name nobody has is counted (and locked) under a hash of the name, exactly like a real
account, so neither the lock nor the picture challenge tells which usernames exist. Failures
are also counted per IP address: after ``CAPTCHA_AFTER`` failures from an address or for an
account, sign-in asks for the characters in a picture (``sso.accounts.captcha``).
"""

from __future__ import annotations

import hashlib
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
#: How long failures from one IP address are remembered for the picture challenge.
IP_MEMORY = 3600

#: An account's user id, or :func:`unknown_subject` of a name nobody has.
Subject = int | str


def unknown_subject(login: str) -> str:
    """The counter key of a sign-in name that matches no account."""
    return "n" + hashlib.sha256(login.strip().lower().encode()).hexdigest()[:32]


def _keys(user_id: Subject) -> tuple[str, str, str]:
    store = get_redis()
    uid = str(user_id)
    return (store.key("lockout", "failures", uid), store.key("lockout", "locked", uid),
            store.key("lockout", "locks", uid))


def locked_for(user_id: Subject) -> int:
    """Seconds the account stays locked (0 when it is not locked)."""
    _failures, locked, _locks = _keys(user_id)
    try:
        ttl = int(get_redis().client.ttl(locked))
    except redis.RedisError as exc:
        log.warning("lockout check skipped, Redis unavailable: %s", exc)
        return 0
    return max(ttl, 0)


def register_failure(user_id: Subject, origin: Origin | None = None,
                     method: str = "password") -> int:
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
    audit.record("account.locked", audit.FAILURE, origin=origin,
                 user_id=user_id if isinstance(user_id, int) else None,
                 seconds=seconds, method=method)
    return seconds


def clear_failures(user_id: Subject) -> None:
    """A successful sign-in: forget the consecutive failures (not the lock history)."""
    failures, _locked, _locks = _keys(user_id)
    try:
        get_redis().client.delete(failures)
    except redis.RedisError as exc:
        log.warning("lockout reset skipped, Redis unavailable: %s", exc)


def unlock(user_id: int, origin: Origin | None = None, actor: str | None = None) -> None:
    """An admin (or a password reset) lifts the lock and the history (``sso users unlock``)."""
    try:
        get_redis().client.delete(*_keys(user_id))
    except redis.RedisError as exc:
        log.warning("unlock skipped, Redis unavailable: %s", exc)
    audit.record("account.unlock", origin=origin, user_id=user_id, actor=actor)


def failures(user_id: Subject) -> int:
    """Consecutive failures counted for the account (0 if Redis is unreachable)."""
    failures_key, _locked, _locks = _keys(user_id)
    try:
        return int(get_redis().client.get(failures_key) or 0)
    except redis.RedisError as exc:
        log.warning("failure count skipped, Redis unavailable: %s", exc)
        return 0


def _ip_key(ip: str | None) -> str:
    return get_redis().key("lockout", "ip", ip or "-")


def register_ip_failure(ip: str | None) -> None:
    try:
        pipe = get_redis().client.pipeline(transaction=False)
        pipe.incr(_ip_key(ip))
        pipe.expire(_ip_key(ip), IP_MEMORY)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("IP failure counter skipped, Redis unavailable: %s", exc)


def ip_failures(ip: str | None) -> int:
    try:
        return int(get_redis().client.get(_ip_key(ip)) or 0)
    except redis.RedisError as exc:
        log.warning("IP failure count skipped, Redis unavailable: %s", exc)
        return 0


def captcha_required(ip: str | None, user_id: Subject | None = None) -> bool:
    """True after ``CAPTCHA_AFTER`` failures from this IP or for this account."""
    threshold = int(current_app.config["CAPTCHA_AFTER"])
    if threshold <= 0:
        return False
    if ip_failures(ip) >= threshold:
        return True
    return user_id is not None and failures(user_id) >= threshold
