"""Bounded waits on the database (docs/hardening.md): no request waits longer than the
settings say for a database that is down, restarting or frozen.

* Connecting: ``SSO_DB_CONNECT_TIMEOUT`` (libpq's ``connect_timeout``); a connection from the
  pool: ``SSO_DB_POOL_TIMEOUT``.
* A statement: ``SSO_DB_STATEMENT_TIMEOUT`` on the server (PostgreSQL's
  ``statement_timeout``), and the same plus :data:`WATCHDOG_GRACE` on the client: a server
  that is frozen (SIGSTOP, a stalled disk, a network that drops packets) cannot enforce its
  own timeout, so a watchdog thread shuts the connection's socket down at the deadline; the
  statement fails, the connection is discarded, and the request answers 503.
* The pool's check that a connection still works, before handing it out, runs under the
  same watchdog, so a frozen server fails the check instead of hanging in it.
* SQLite: ``SSO_DB_BUSY_TIMEOUT`` is how long a writer waits for another's lock.

Any of these ends as :class:`sqlalchemy.exc.OperationalError` (or the pool's
``TimeoutError``), which ``sso.errors`` answers with 503 ``temporarily_unavailable``.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the settings read engine_options: `sso db current` needs no Flask
    from flask import Flask

log = logging.getLogger(__name__)

#: Seconds the client waits beyond the server's statement timeout before it cuts.
WATCHDOG_GRACE = 1.0




class Watchdog:
    """One thread per process that shuts down the sockets of statements past their deadline."""

    def __init__(self, tick: float = 0.1) -> None:
        self.tick = tick
        self.armed: dict[int, tuple[float, int]] = {}
        self.lock = threading.Lock()
        self.counter = itertools.count()
        self.thread: threading.Thread | None = None
        self.fired = 0

    def arm(self, fileno: int, seconds: float) -> int:
        token = next(self.counter)
        with self.lock:
            self.armed[token] = (time.monotonic() + seconds, fileno)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="sso-db-watchdog",
                                               daemon=True)
                self.thread.start()
        return token

    def disarm(self, token: int | None) -> None:
        if token is not None:
            with self.lock:
                self.armed.pop(token, None)

    def _run(self) -> None:
        while True:
            time.sleep(self.tick)
            now = time.monotonic()
            with self.lock:
                # Under the lock: a statement still armed still owns its socket, so the
                # descriptor cannot have been closed and reused meanwhile.
                for token, (deadline, fileno) in list(self.armed.items()):
                    if deadline <= now:
                        del self.armed[token]
                        self._cut(fileno)

    def _cut(self, fileno: int) -> None:
        self.fired += 1
        log.error("database statement past its deadline: cutting its connection")
        try:
            sock = socket.socket(fileno=os.dup(fileno))
        except OSError:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            sock.close()


watchdog = Watchdog()
_TOKEN = "sso_watchdog"
_CHECKED_IN = "sso_checked_in"


def _pg_socket(dbapi_connection: Any) -> int | None:
    pgconn = getattr(dbapi_connection, "pgconn", None)
    try:
        return int(pgconn.socket) if pgconn is not None else None
    except Exception:  # noqa: BLE001 - a closed connection has no socket
        return None


def guard(engine: Any, config: Any) -> None:
    """Put the client-side deadline on ``engine``'s PostgreSQL statements and pings."""
    from sqlalchemy import event, exc  # noqa: PLC0415 - not for the settings alone
    if engine.dialect.name != "postgresql":
        return
    limit = float(config.get("DB_STATEMENT_TIMEOUT", 10))
    if not limit:
        return
    seconds = limit + WATCHDOG_GRACE

    @event.listens_for(engine, "before_cursor_execute")
    def _arm(conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any,
             executemany: Any) -> None:
        fileno = _pg_socket(conn.connection.dbapi_connection)
        if fileno is not None:
            conn.info[_TOKEN] = watchdog.arm(fileno, seconds)

    @event.listens_for(engine, "after_cursor_execute")
    def _disarm(conn: Any, *args: Any) -> None:
        watchdog.disarm(conn.info.pop(_TOKEN, None))

    @event.listens_for(engine, "handle_error")
    def _disarm_on_error(context: Any) -> None:
        if context.connection is not None:
            watchdog.disarm(context.connection.info.pop(_TOKEN, None))

    ping_seconds = min(seconds, float(config.get("DB_CONNECT_TIMEOUT", 3)) + WATCHDOG_GRACE)
    ping_idle = float(config.get("DB_PING_IDLE", 1))

    @event.listens_for(engine, "checkin")
    def _note_checkin(dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        """SQLAlchemy's pre-ping, under the watchdog: a dead or frozen server fails it and
        the pool tries a fresh connection (which ``connect_timeout`` bounds).

        A connection handed back less than ``SSO_DB_PING_IDLE`` seconds ago is not pinged
        (under load none is): if the server went away since, the request's own statement
        fails, answers 503, and that disconnect invalidates the whole pool, so the next
        checkout connects afresh. The ping runs outside a transaction (one round trip, not
        BEGIN, SELECT and ROLLBACK)."""
        checked_in = record.info.get(_CHECKED_IN)
        if checked_in is not None and time.monotonic() - checked_in < ping_idle:
            return
        fileno = _pg_socket(dbapi_connection)
        token = watchdog.arm(fileno, ping_seconds) if fileno is not None else None
        try:
            autocommit = dbapi_connection.autocommit  # the reads' engine keeps it on
            dbapi_connection.autocommit = True
            try:
                dbapi_connection.execute("SELECT 1")
            finally:
                dbapi_connection.autocommit = autocommit
        except Exception as error:  # noqa: BLE001 - any failure means: not this connection
            raise exc.DisconnectionError(f"stale database connection: {error}") from error
        finally:
            watchdog.disarm(token)


#: Statements that take SQLite's write lock.
_SQLITE_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")
_WRITING = "sso_sqlite_writing"


class SQLiteWriteGate:
    """One writer at a time per process, queued in Python, on a SQLite engine.

    SQLite lets one connection write at a time; another writer waits in SQLite's busy
    handler, which sleeps in C and retries. Here a writer first takes a lock in Python, held
    from its first write to its commit or rollback, so the others queue in order and the
    holder finishes; under gevent (the server before granian), where every request of a
    worker shares one thread, the busy handler's sleep stopped the whole worker, the holder
    included, until the busy timeout failed the second writer (5 s stalls and errors in the
    code flow under load). Other processes still meet at SQLite's own lock, where the
    operating system keeps the holder running.
    """

    def __init__(self, wait: float) -> None:
        self.lock = threading.RLock()
        self.wait = wait

    def attach(self, engine: Any) -> None:
        from sqlalchemy import event  # noqa: PLC0415 - not for the settings alone

        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "commit", self._end)
        event.listen(engine, "rollback", self._end)
        event.listen(engine.pool, "reset", self._reset)
        event.listen(engine.pool, "invalidate", self._invalidate)

    def _before(self, conn: Any, cursor: Any, statement: str, *_rest: Any) -> None:
        info = conn.connection.info
        if info.get(_WRITING) or not statement.lstrip()[:7].upper().startswith(_SQLITE_WRITES):
            return
        # Bounded: past the busy timeout SQLite itself answers "database is locked".
        if self.lock.acquire(timeout=self.wait):
            info[_WRITING] = True

    def _release(self, info: dict[str, Any]) -> None:
        if info.pop(_WRITING, False):
            try:
                self.lock.release()
            except RuntimeError:  # ended from another thread than the one that wrote
                log.warning("SQLite write gate released from another thread")

    def _end(self, conn: Any) -> None:
        self._release(conn.connection.info)

    def _reset(self, dbapi_connection: Any, record: Any, reset_state: Any) -> None:
        self._release(record.info)

    def _invalidate(self, dbapi_connection: Any, record: Any, exception: Any) -> None:
        self._release(record.info)


_READ_ENGINE = "sso_read_engine"
_making_read_engine = threading.Lock()


def read_bind() -> Any:
    """The engine of the reads that join no transaction (``sso.oidc.tokens._read``: the
    revocation check of introspection and UserInfo). Asking ``db.session`` for its bind would
    make the request's ORM session, and making it and removing it at teardown was about a
    tenth of an introspection. (The tests' rolled-back fixture binds this to its one
    connection, as it binds every session.)

    On PostgreSQL it is an engine of its own whose connections stay in autocommit: one round
    trip per read, not BEGIN, the statement and ROLLBACK, and no switch of the connection's
    isolation level and back on every read, which cost the client about a third of the
    read's CPU (``docs/performance.md``). It is made on the first such read of the process,
    with the main engine's settings and ``SSO_DB_READ_POOL_SIZE`` connections, under the
    same watchdog. On SQLite a read outside a transaction begins none: the main engine."""
    from flask import current_app  # noqa: PLC0415 - not for the settings alone

    from .extensions import db  # noqa: PLC0415

    engine = current_app.extensions.get(_READ_ENGINE)
    if engine is not None:
        return engine
    with _making_read_engine:
        engine = current_app.extensions.get(_READ_ENGINE)
        if engine is None:
            engine = current_app.extensions[_READ_ENGINE] = _read_engine(db.engine,
                                                                         current_app.config)
    return engine


def _read_engine(main: Any, config: Any) -> Any:
    if main.dialect.name != "postgresql":
        return main
    from sqlalchemy import create_engine  # noqa: PLC0415 - not for the settings alone

    options = {**config["SQLALCHEMY_ENGINE_OPTIONS"],
               "pool_size": int(config.get("DB_READ_POOL_SIZE", 5)), "max_overflow": 0,
               "isolation_level": "AUTOCOMMIT"}
    engine = create_engine(main.url, **options)
    guard(engine, config)
    return engine


def init_app(app: Flask) -> None:
    from .extensions import db  # noqa: PLC0415

    with app.app_context():
        guard(db.engine, app.config)
        if db.engine.dialect.name == "sqlite":
            SQLiteWriteGate(float(app.config.get("DB_BUSY_TIMEOUT", 5))).attach(db.engine)
