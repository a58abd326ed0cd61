"""Per-account brute-force protection: consecutive failures lock the account for a while.

Two counters per account, so that one factor's success never clears the other's failures:

* **password** (sign-in, ``/mfa/remove``, password change: every password check counts):
  ``LOCKOUT_THRESHOLD`` consecutive failures lock the account for ``LOCKOUT_SECONDS``,
  doubling with each further lock within a day (15 min, 30 min, 1 h, ...); a right password
  clears the count;
* **second factor** (TOTP and recovery codes): ``MFA_LOCKOUT_THRESHOLD`` consecutive failures
  lock the second factor the same way, cleared only by a right code; and at most
  ``MFA_DAILY_FAILURES`` failures in 24 hours, whatever succeeds in between (a right password
  between guesses no longer resets anything).

Counters live in Redis. If Redis is unreachable they are kept in this process's memory
(``sso.ratelimit.local``): the lock still works, per process, and nobody is let through
unchecked. The picture challenge needs Redis and is not asked while it is down.

A name nobody has is counted (and locked) under a hash of the name, exactly like a real
account, so neither the lock nor the picture challenge tells which usernames exist.

The picture challenge (``sso.accounts.captcha``) counts per account and per account and IP
address, so people behind one office address do not bring it up for each other: it is asked
after ``CAPTCHA_AFTER`` failures for the account, and for any name after
``CAPTCHA_AFTER_IP`` failures from one address within an hour (high: an office's NAT).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import redis
from flask import current_app

from .. import audit, ratelimit
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


PASSWORD, SECOND = "password", "second"
#: The window of the second factor's daily cap.
DAY = 24 * 3600


class _Store:
    """Redis, or this process's counters when Redis cannot be reached."""

    def __init__(self) -> None:
        self.redis = get_redis()

    def _fallback(self, exc: Exception, what: str) -> Any:
        log.warning("%s counted in this process, Redis unavailable: %s", what, exc)
        return ratelimit.local

    def incr(self, key: str, ttl: int, what: str, fixed: bool = False) -> int:
        """Add one; the key expires ``ttl`` seconds after its last failure, or (``fixed``)
        after its first."""
        try:
            pipe = self.redis.client.pipeline()
            if fixed:
                pipe.set(key, 0, ex=ttl, nx=True)
                pipe.incr(key)
                return int(pipe.execute()[1])
            pipe.incr(key)
            pipe.expire(key, ttl)
            return int(pipe.execute()[0])
        except redis.RedisError as exc:
            return int(self._fallback(exc, what).incr(key, ttl))

    def get(self, key: str, what: str) -> int:
        try:
            return int(self.redis.client.get(key) or 0)
        except redis.RedisError as exc:
            return int(self._fallback(exc, what).get(key))

    def ttl(self, key: str, what: str) -> int:
        try:
            return max(int(self.redis.client.ttl(key)), 0)
        except redis.RedisError as exc:
            return int(self._fallback(exc, what).ttl(key))

    def set(self, key: str, seconds: int, what: str) -> None:
        try:
            self.redis.client.set(key, "1", ex=seconds)
        except redis.RedisError as exc:
            self._fallback(exc, what).set(key, 1, seconds)

    def delete(self, *keys: str, what: str) -> None:
        ratelimit.local.delete(*keys)
        for key in keys:
            ratelimit.local.delete_prefix(key + "|")
        try:
            self.redis.client.delete(*keys)
        except redis.RedisError as exc:
            log.warning("%s: Redis unavailable: %s", what, exc)

    def hincr(self, key: str, field: str, ttl: int, what: str) -> int:
        """Add one to ``field`` of hash ``key`` (all of an account's addresses in one key, so
        that unlocking the account forgets them at once)."""
        try:
            pipe = self.redis.client.pipeline()
            pipe.hincrby(key, field, 1)
            pipe.expire(key, ttl)
            return int(pipe.execute()[0])
        except redis.RedisError as exc:
            return int(self._fallback(exc, what).incr(f"{key}|{field}", ttl))

    def hget(self, key: str, field: str, what: str) -> int:
        try:
            return int(self.redis.client.hget(key, field) or 0)
        except redis.RedisError as exc:
            return int(self._fallback(exc, what).get(f"{key}|{field}"))

    def hdel(self, key: str, field: str, what: str) -> None:
        ratelimit.local.delete(f"{key}|{field}")
        try:
            self.redis.client.hdel(key, field)
        except redis.RedisError as exc:
            log.warning("%s: Redis unavailable: %s", what, exc)

    @property
    def up(self) -> bool:
        try:
            return bool(self.redis.client.ping())
        except redis.RedisError:
            return False


def _keys(user_id: Subject, factor: str = PASSWORD) -> tuple[str, str, str]:
    store = get_redis()
    uid = str(user_id)
    if factor == SECOND:
        return (store.key("lockout", "mfa-failures", uid), store.key("lockout", "mfa-locked", uid),
                store.key("lockout", "mfa-locks", uid))
    return (store.key("lockout", "failures", uid), store.key("lockout", "locked", uid),
            store.key("lockout", "locks", uid))


def _daily_key(user_id: Subject) -> str:
    return get_redis().key("lockout", "mfa-day", str(user_id))


def locked_for(user_id: Subject, factor: str = PASSWORD) -> int:
    """Seconds the account (or its second factor) stays locked (0 when it is not)."""
    store = _Store()
    _failures, locked, _locks = _keys(user_id, factor)
    seconds = store.ttl(locked, "lockout check")
    if factor == SECOND:
        cap = int(current_app.config.get("MFA_DAILY_FAILURES", 20))
        daily = _daily_key(user_id)
        if cap and store.get(daily, "daily cap") >= cap:
            seconds = max(seconds, store.ttl(daily, "daily cap"))
    return seconds


def register_failure(user_id: Subject, origin: Origin | None = None,
                     method: str = "password", factor: str = PASSWORD) -> int:
    """Count a failure; return the lock duration in seconds if this failure locked the account
    (or its second factor)."""
    config = current_app.config
    store = _Store()
    failures, locked, locks = _keys(user_id, factor)
    if factor == SECOND:
        threshold = int(config.get("MFA_LOCKOUT_THRESHOLD", config["LOCKOUT_THRESHOLD"]))
        store.incr(_daily_key(user_id), DAY, "daily cap", fixed=True)
    else:
        threshold = int(config["LOCKOUT_THRESHOLD"])
    count = store.incr(failures, LOCK_MEMORY, "lockout counter")
    if count < threshold:
        return 0
    previous_locks = store.incr(locks, LOCK_MEMORY, "lockout counter")
    store.delete(failures, what="lockout counter")
    seconds = min(config["LOCKOUT_SECONDS"] * 2 ** (previous_locks - 1), MAX_LOCK_SECONDS)
    store.set(locked, seconds, "lock")
    audit.record("account.locked", audit.FAILURE, origin=origin,
                 user_id=user_id if isinstance(user_id, int) else None,
                 seconds=seconds, method=method)
    return seconds


def clear_failures(user_id: Subject, factor: str = PASSWORD, ip: str | None = None) -> None:
    """A success of this factor: forget its consecutive failures (not the lock history, not
    the second factor's daily cap)."""
    failures, _locked, _locks = _keys(user_id, factor)
    store = _Store()
    store.delete(failures, what="lockout reset")
    if ip is not None and factor == PASSWORD:
        store.hdel(_account_ip_key(user_id), ip, "lockout reset")


def unlock(user_id: int, origin: Origin | None = None, actor: str | None = None) -> None:
    """An admin (or a password reset) lifts the locks and the history (``sso users unlock``)."""
    _Store().delete(*_keys(user_id), *_keys(user_id, SECOND), _daily_key(user_id),
                    _account_ip_key(user_id), what="unlock")
    audit.record("account.unlock", origin=origin, user_id=user_id, actor=actor)


def failures(user_id: Subject, factor: str = PASSWORD) -> int:
    """Consecutive failures counted for the account."""
    failures_key, _locked, _locks = _keys(user_id, factor)
    return _Store().get(failures_key, "failure count")


def _ip_key(ip: str | None) -> str:
    return get_redis().key("lockout", "ip", ip or "-")


def _account_ip_key(user_id: Subject) -> str:
    """A hash of the account's failures per address."""
    return get_redis().key("lockout", "account-ip", str(user_id))


def register_ip_failure(ip: str | None, user_id: Subject | None = None) -> None:
    store = _Store()
    store.incr(_ip_key(ip), IP_MEMORY, "IP failure counter")
    if user_id is not None:
        store.hincr(_account_ip_key(user_id), ip or "-", IP_MEMORY,
                    "account and IP failure counter")


def ip_failures(ip: str | None) -> int:
    return _Store().get(_ip_key(ip), "IP failure count")


def captcha_required(ip: str | None, user_id: Subject | None = None) -> bool:
    """True after ``CAPTCHA_AFTER`` failures for this account (from anywhere, or from this
    address), or ``CAPTCHA_AFTER_IP`` failures from this address for any names. Never while
    Redis is down: the picture lives there, and the lockout goes on counting without it."""
    config = current_app.config
    threshold = int(config["CAPTCHA_AFTER"])
    if threshold <= 0:
        return False
    store = _Store()
    if not store.up:
        return False
    per_ip = int(config.get("CAPTCHA_AFTER_IP", 50))
    if per_ip > 0 and ip_failures(ip) >= per_ip:
        return True
    if user_id is None:
        return False
    return (failures(user_id) >= threshold
            or store.hget(_account_ip_key(user_id), ip or "-", "captcha") >= threshold)
