"""Per-worker caches of database rows, kept valid by a generation held in Redis (DESIGN.md §7).

A worker keeps entries between requests while a random *generation* value in Redis is
unchanged. A commit that changed what the entries were read from sets a fresh generation
(:meth:`TaggedCache.invalidate`, called by session listeners after the commit): the worker
that made the change drops its entries at once, every other worker at its next check, at most
``check_interval`` seconds later (one Redis round trip per interval, not one per request).
A random value rather than a counter means that a flushed or restarted Redis can never bring
back a generation a worker cached under. Entries also expire after ``max_age`` seconds, and
while Redis does not answer the cache is emptied and bypassed: every lookup reads the
database, as it would with no cache.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

import redis

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TaggedCache(Generic[K, V]):
    """Entries of one kind (``what``, for the log) under the generation key ``key_parts``."""

    REDIS_DOWN_PAUSE = 5.0

    def __init__(self, redis_store: Any, key_parts: tuple[str, ...], what: str, *,
                 max_age: float, check_interval: float, size: int | None = None) -> None:
        self.redis = redis_store
        self.key_parts = key_parts
        self.what = what
        self.max_age = max_age
        self.check_interval = check_interval
        #: The most entries kept; when full, the oldest goes (None: no bound).
        self.size = size
        self._entries: dict[K, tuple[V, float]] = {}
        self._generation: bytes | None = None
        self._checked_at = float("-inf")
        self._bypass_until = float("-inf")
        #: Held by the one thread that asks Redis when the interval is up: the worker's other
        #: threads keep the generation they have meanwhile, rather than all asking at once.
        self._checking = threading.Lock()
        # The server answers on many threads: one evicts at a time.
        self._evicting = threading.Lock()

    def _key(self) -> str:
        return self.redis.key(*self.key_parts, "generation")  # type: ignore[no-any-return]

    def _current_generation(self, now: float) -> bytes | None:
        if now < self._bypass_until:
            return None
        if self._generation is not None and now - self._checked_at < self.check_interval:
            return self._generation
        # With no generation yet there is nothing to serve meanwhile: wait for the asker.
        if not self._checking.acquire(blocking=self._generation is None):
            return self._generation
        try:
            if self._generation is not None and now - self._checked_at < self.check_interval:
                return self._generation  # asked while this thread waited
            client = self.redis.client
            generation = client.get(self._key())
            if generation is None:
                client.set(self._key(), secrets.token_hex(16), nx=True)
                generation = client.get(self._key())
        except redis.RedisError:
            log.warning("Redis unavailable: %s are read from the database for a while",
                        self.what)
            self._bypass_until = now + self.REDIS_DOWN_PAUSE
            self._entries, self._generation = {}, None
            return None
        finally:
            self._checking.release()
        self._checked_at = now
        return generation  # type: ignore[no-any-return]

    def lookup(self, key: K, load: Callable[[], V | None], now: float | None = None) -> V | None:
        """The entry for ``key``, else what ``load`` reads from the database (kept unless
        None)."""
        now = time.monotonic() if now is None else now
        # The generation is read before the database, so an entry is never newer than its tag.
        generation = self._current_generation(now)
        if generation is None:
            return load()
        if generation != self._generation:
            self._entries = {}
            self._generation = generation
        entries = self._entries
        entry = entries.get(key)
        if entry is not None and entry[1] > now:
            return entry[0]
        value = load()
        if value is None:
            return None
        if self.size is not None and len(entries) >= self.size:
            with self._evicting:
                while len(entries) >= self.size:
                    entries.pop(next(iter(entries)), None)
        entries[key] = (value, now + self.max_age)
        return value

    def invalidate(self) -> None:
        """Tell every worker that the rows changed (called after a commit that changed one)."""
        self._entries = {}
        self._checked_at = float("-inf")
        try:
            self.redis.client.set(self._key(), secrets.token_hex(16))
        except redis.RedisError:
            log.error("Redis unavailable: other workers keep cached %s up to %ss",
                      self.what, self.max_age)
