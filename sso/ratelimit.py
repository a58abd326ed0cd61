"""Fixed-window rate limits in Redis, and the per-process fallback when Redis is unreachable.

When Redis is down, limits and lockout counters are not skipped (that would open the door to
whoever can take Redis down): they are counted in this process's memory instead, by
:data:`local`, and rate limits allow only :data:`FALLBACK_SHARE` of their budget, since each
worker process counts on its own (docs/hardening.md). People can still sign in.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from flask import jsonify
from werkzeug.wrappers import Response

from .extensions import get_redis

log = logging.getLogger(__name__)


def parse(limit: str) -> tuple[int, int]:
    count, _, seconds = str(limit).partition("/")
    return int(count), int(seconds or 60)


#: The part of a limit's budget one process allows while it counts alone (Redis down).
FALLBACK_SHARE = 0.5
#: At most this many keys in memory; the oldest windows go first.
LOCAL_MAX_KEYS = 100_000


class LocalCounters:
    """Counters with expiry in this process: Redis's INCR, GET, SET EX, TTL and DEL, for
    when Redis cannot be reached."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[int, float]] = {}
        self.lock = threading.Lock()

    def _live(self, key: str, now: float) -> tuple[int, float] | None:
        found = self.values.get(key)
        if found is not None and found[1] <= now:
            del self.values[key]
            return None
        return found

    def incr(self, key: str, ttl: float) -> int:
        """Add one; a new key lives ``ttl`` seconds (an existing one keeps its expiry)."""
        now = time.monotonic()
        with self.lock:
            found = self._live(key, now)
            value, expires = (found[0] + 1, found[1]) if found else (1, now + ttl)
            if len(self.values) >= LOCAL_MAX_KEYS and key not in self.values:
                self._evict(now)
            self.values[key] = (value, expires)
            return value

    def set(self, key: str, value: int, ttl: float) -> None:
        with self.lock:
            self.values[key] = (value, time.monotonic() + ttl)

    def get(self, key: str) -> int:
        with self.lock:
            found = self._live(key, time.monotonic())
            return found[0] if found else 0

    def ttl(self, key: str) -> int:
        now = time.monotonic()
        with self.lock:
            found = self._live(key, now)
            return int(found[1] - now + 0.999) if found else 0

    def delete(self, *keys: str) -> None:
        with self.lock:
            for key in keys:
                self.values.pop(key, None)

    def delete_prefix(self, prefix: str) -> None:
        with self.lock:
            for key in [k for k in self.values if k.startswith(prefix)]:
                del self.values[key]

    def _evict(self, now: float) -> None:
        for key in [k for k, (_, expires) in self.values.items() if expires <= now]:
            del self.values[key]
        while len(self.values) >= LOCAL_MAX_KEYS:
            oldest = min(self.values, key=lambda k: self.values[k][1])
            del self.values[oldest]

    def clear(self) -> None:
        with self.lock:
            self.values.clear()


local = LocalCounters()


def allow(bucket: str, who: str, limit: str, now: float | None = None) -> bool:
    """Count one hit for ``who`` in ``bucket``; False once the window's budget is spent."""
    count, window = parse(limit)
    store = get_redis()
    now = time.time() if now is None else now
    key = store.key("rl", bucket, who, str(int(now // window)))
    try:
        pipe = store.client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, window + 1)
        hits, _ = pipe.execute()
    except redis.RedisError as exc:
        log.warning("rate limit %s counted in this process, Redis unavailable: %s", bucket, exc)
        return local.incr(key, window + 1) <= max(1, int(count * FALLBACK_SHARE))
    return int(hits) <= count


def too_many_json() -> Response:
    response = jsonify(error="slow_down", error_description="Too many requests.")
    response.status_code = 429
    response.headers["Retry-After"] = "60"
    return response
