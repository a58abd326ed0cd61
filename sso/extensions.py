"""Unbound extensions, created once and bound in :func:`sso.create_app`."""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, current_app
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """WAL and a busy timeout let gunicorn workers share one SQLite file; FKs are on."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()


class CountingRedis(redis.Redis):
    """A client that counts failed commands (``sso_redis_errors_total``)."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute_command(*args, **options)
        except redis.RedisError:
            from .metrics import redis_error  # noqa: PLC0415

            redis_error()
            raise


class RedisStore:
    """One connection pool per process, with the key prefix every module uses.

    Commands time out quickly so that a Redis outage degrades the features that need Redis
    (QR login, counters) instead of hanging every request.
    """

    def __init__(self, url: str | None, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self._client: redis.Redis | None = None

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            if not self.url:
                raise RuntimeError("Redis is not configured")
            self._client = CountingRedis.from_url(
                self.url,
                socket_connect_timeout=1.0,
                socket_timeout=2.0,
                health_check_interval=30,
                decode_responses=False,
            )
        return self._client

    def key(self, *parts: str) -> str:
        """Build ``{prefix}{area}:{purpose}:{id}``."""
        return self.prefix + ":".join(parts)

    def blocking_client(self) -> redis.Redis:
        """A client without a read timeout, for pub/sub listeners that wait on purpose."""
        if not self.url:
            raise RuntimeError("Redis is not configured")
        return CountingRedis.from_url(self.url, socket_connect_timeout=1.0,
                                      health_check_interval=30)


def init_redis(app: Flask) -> RedisStore:
    store = RedisStore(app.config["REDIS_URL"], app.config["REDIS_PREFIX"])
    app.extensions["sso_redis"] = store
    return store


def get_redis() -> RedisStore:
    return current_app.extensions["sso_redis"]  # type: ignore[no-any-return]
