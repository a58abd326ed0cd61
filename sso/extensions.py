"""Unbound extensions, created once and bound in :func:`sso.create_app`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis
from flask import Flask, current_app
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session as FlaskSession
from redis.sentinel import Sentinel, SentinelConnectionPool
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine

from .config import parse_sentinels
from .database import current_writes

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

class Session(FlaskSession):
    """The request's ORM session: bound to the connection the request holds, if it holds
    one (``sso.database.request_writes``), so that its statements join the request's
    transaction rather than take another connection."""

    def get_bind(self, mapper: Any = None, clause: Any = None, bind: Any = None,
                 **kwargs: Any) -> Any:
        writes = current_writes()
        if writes is None or bind is not None:
            return super().get_bind(mapper, clause=clause, bind=bind, **kwargs)
        return writes.bind(self)


db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION),
                session_options={"class_": Session})


#: Pages the SQLite write-ahead log grows to before a commit copies them into the database
#: file (SQLite's default is 1,000). The token paths rewrite the same few pages (the tables'
#: last pages, their indexes' leaves) on every commit; a checkpoint copies each page once,
#: however often it changed, so checkpointing a tenth as often copies far less: refresh cost
#: 4.5 % less CPU in six served runs of six (bench/README.md, sixteenth round). The log then
#: takes up to about 40 MB of disk beside the database, and recovery after a crash reads it.
SQLITE_WAL_AUTOCHECKPOINT = 10_000


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """WAL and a busy timeout let the server's workers share one SQLite file; FKs are on."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT}")
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

    Redis is reached either by URL (``SSO_REDIS_URL``) or through Redis Sentinel
    (``SSO_REDIS_SENTINELS`` and ``SSO_REDIS_MASTER_NAME``): then every connection asks the
    sentinels where the master is, and a connection that breaks or finds itself on a demoted
    master asks again, so a failover costs the requests of the gap and nothing more. Every
    Redis client of the provider comes from :meth:`make_client`, so both ways reach every
    feature (counters, caches, QR sessions and their pub/sub).

    Commands time out quickly so that a Redis outage degrades the features that need Redis
    (QR login, counters) instead of hanging every request.
    """

    def __init__(self, url: str | None, prefix: str, *,
                 sentinels: Sequence[tuple[str, int]] = (), master_name: str = "mymaster",
                 password: str | None = None, sentinel_password: str | None = None,
                 db: int = 0) -> None:
        self.url = url
        self.prefix = prefix
        self.sentinels = list(sentinels)
        self.master_name = master_name
        self.password = password
        self.sentinel_password = sentinel_password
        self.db = db
        self._client: redis.Redis | None = None
        self._sentinel: Sentinel | None = None

    @property
    def configured(self) -> bool:
        return bool(self.url or self.sentinels)

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = self.make_client(socket_timeout=2.0)
        return self._client

    def key(self, *parts: str) -> str:
        """Build ``{prefix}{area}:{purpose}:{id}``."""
        return self.prefix + ":".join(parts)

    def blocking_client(self) -> redis.Redis:
        """A client without a read timeout, for pub/sub listeners that wait on purpose."""
        return self.make_client(socket_timeout=None)

    def sentinel(self) -> Sentinel:
        if self._sentinel is None:
            self._sentinel = Sentinel(
                self.sentinels, socket_connect_timeout=1.0, socket_timeout=1.0,
                sentinel_kwargs={"socket_connect_timeout": 1.0, "socket_timeout": 1.0,
                                 "password": self.sentinel_password},
            )
        return self._sentinel

    def master_address(self) -> tuple[str, int] | None:
        """Where the master is now, by the sentinels (``None`` without Sentinel)."""
        if not self.sentinels:
            return None
        host, port = self.sentinel().discover_master(self.master_name)
        return str(host), int(port)

    def make_client(self, *, max_connections: int | None = None, blocking: bool = False,
                    **options: Any) -> redis.Redis:
        """A client with a pool of its own, by URL or through the sentinels.

        ``blocking`` makes a full pool wait for a free connection (up to 5 s) instead of
        opening another; ``options`` are redis-py connection options (``socket_timeout``,
        ``retry`` ...).
        """
        if not self.configured:
            raise RuntimeError("Redis is not configured")
        settings: dict[str, Any] = {"socket_connect_timeout": 1.0, "health_check_interval": 30,
                                    **options}
        if max_connections is not None:
            settings["max_connections"] = max_connections
        if blocking:
            settings["timeout"] = 5
        if not self.sentinels:
            pool_class = redis.BlockingConnectionPool if blocking else redis.ConnectionPool
            return CountingRedis(connection_pool=pool_class.from_url(str(self.url), **settings))
        settings.update(password=self.password, db=self.db)
        return self.sentinel().master_for(
            self.master_name,
            redis_class=CountingRedis,
            connection_pool_class=BlockingSentinelPool if blocking else SentinelConnectionPool,
            **settings)


class BlockingSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """A Sentinel pool that, when full, waits for a free connection like
    :class:`redis.BlockingConnectionPool`."""


def init_redis(app: Flask) -> RedisStore:
    config = app.config
    store = RedisStore(
        config["REDIS_URL"], config["REDIS_PREFIX"],
        sentinels=parse_sentinels(config.get("REDIS_SENTINELS")),
        master_name=str(config.get("REDIS_MASTER_NAME") or "mymaster"),
        password=config.get("REDIS_PASSWORD") or None,
        sentinel_password=config.get("REDIS_SENTINEL_PASSWORD") or None,
        db=int(config.get("REDIS_DB") or 0),
    )
    app.extensions["sso_redis"] = store
    return store


def get_redis() -> RedisStore:
    return current_app.extensions["sso_redis"]  # type: ignore[no-any-return]
