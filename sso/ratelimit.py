"""Fixed-window rate limits in Redis. If Redis is down the limit is skipped and logged:
a counter outage must not stop people from signing in."""

from __future__ import annotations

import logging
import time

import redis
from flask import jsonify
from werkzeug.wrappers import Response

from .extensions import get_redis

log = logging.getLogger(__name__)


def parse(limit: str) -> tuple[int, int]:
    count, _, seconds = str(limit).partition("/")
    return int(count), int(seconds or 60)


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
        log.warning("rate limit %s skipped, Redis unavailable: %s", bucket, exc)
        return True
    return int(hits) <= count


def too_many_json() -> Response:
    response = jsonify(error="slow_down", error_description="Too many requests.")
    response.status_code = 429
    response.headers["Retry-After"] = "60"
    return response
