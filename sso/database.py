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
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the settings read engine_options: `sso db current` needs no Flask
    from flask import Flask

log = logging.getLogger(__name__)

#: Seconds the client waits beyond the server's statement timeout before it cuts.
WATCHDOG_GRACE = 1.0


class _RequestTime:
    """The names the request-time helpers below use (Flask's app, the ORM session,
    SQLAlchemy's ``Connection``), imported on first use: the settings import this module,
    and ``sso db current`` needs no Flask. An import statement inside a function runs
    the import machinery on every call (about 0.35 µs each here, several per token
    request)."""

    def __getattr__(self, name: str) -> Any:
        from flask import current_app  # noqa: PLC0415 - not for the settings alone
        from sqlalchemy.engine import Connection  # noqa: PLC0415

        from .extensions import db  # noqa: PLC0415

        self.current_app, self.db, self.Connection = current_app, db, Connection
        return self.__dict__[name]


_request_time = _RequestTime()


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
    from sqlalchemy import event  # noqa: PLC0415 - not for the settings alone
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

    ping_seconds = _ping_seconds(config)
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
        checkout connects afresh."""
        checked_in = record.info.get(_CHECKED_IN)
        if checked_in is not None and time.monotonic() - checked_in < ping_idle:
            return
        ping(dbapi_connection, ping_seconds)


def _ping_seconds(config: Any) -> float:
    """How long a ping may take: the connect timeout, within the statements' deadline."""
    seconds = float(config.get("DB_STATEMENT_TIMEOUT", 10)) + WATCHDOG_GRACE
    return min(seconds, float(config.get("DB_CONNECT_TIMEOUT", 3)) + WATCHDOG_GRACE)


def ping(dbapi_connection: Any, seconds: float) -> None:
    """One ``SELECT 1`` on a PostgreSQL connection, under the watchdog, outside a transaction
    (one round trip, not BEGIN, SELECT and ROLLBACK); a failure raises
    :class:`sqlalchemy.exc.DisconnectionError`."""
    from sqlalchemy import exc  # noqa: PLC0415 - not for the settings alone

    fileno = _pg_socket(dbapi_connection)
    token = watchdog.arm(fileno, seconds) if fileno is not None else None
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


class Turns:
    """WSGI layer: the protocol's hot requests take turns, a few at a time per process (one on
    a SQLite file, ``SSO_POSTGRES_TURNS`` on PostgreSQL), each for the whole of its answer.

    A worker answers its requests on many threads at once, a thread each. What running all of
    them at once costs depends on the database:

    * **SQLite.** Every connection keeps its own page cache, and in WAL mode a connection
      throws all of it away when it begins a transaction after another connection has
      written. Each request holds the pooled connection it took from its first statement to
      its commit, so under load the next transaction nearly always runs on another
      connection than the last write and reads every page it touches again: about 50 page
      reads (``pread``) per refresh instead of 3. One at a time, these requests run on the
      connection handed back last, whose cache stays warm: about an eighth less CPU per
      refresh and per code flow, and more of them per second.
    * **PostgreSQL.** A request waits on the server's answers, and that overlap is worth
      having: one at a time lost a third of the throughput. All at once (32 connections of
      the benchmark) is no better: the threads that are not waiting contend for the
      interpreter, each with a backend of its own contending for the cores. Three at a time
      keep the overlap: in the benchmark's runs the code flow's and the refresh's p99 were
      about 40 % shorter, with more of them answered per second for less CPU each
      (``docs/performance.md``).

    A turn is a performance device, not a lock anything relies on: a request that has waited
    ``wait`` seconds for its turn goes on without it, as every request did before, so slow
    holders (a Redis or database wait) delay the others by that much at most. Other paths
    (pages, the console, the QR streams) never take a turn. The requests answered in front
    of Flask take theirs in :class:`sso.oidc.direct.DirectFirst`, which knows the grant: a
    ``client_credentials`` token touches no database and takes none.
    """

    def __init__(self, wsgi_app: Any, paths: Iterable[str], wait: float,
                 at_once: int = 1) -> None:
        self.wsgi_app = wsgi_app
        self.paths = frozenset(paths)
        self.wait = wait
        self.at_once = at_once
        self.turn: Any = (threading.Lock() if at_once == 1
                          else threading.BoundedSemaphore(at_once))
        self.without_turn = 0  #: requests that waited ``wait`` and went on without one

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") not in self.paths:
            return self.wsgi_app(environ, start_response)
        with self.taken():
            return self.wsgi_app(environ, start_response)

    @contextmanager
    def taken(self) -> Iterator[None]:
        """A turn for the block, or none once ``wait`` has passed."""
        if not self.turn.acquire(timeout=self.wait):
            self.without_turn += 1
            from . import metrics  # noqa: PLC0415 - rare, and this module needs no Flask

            metrics.turn_waited_out()
            yield
            return
        try:
            yield
        finally:
            self.turn.release()


def take_turns(app: Flask, paths: Iterable[str]) -> Turns | None:
    """Put :class:`Turns` in front of ``app``'s WSGI callable for ``paths`` and return it: on
    a SQLite file one at a time, on PostgreSQL ``SSO_POSTGRES_TURNS`` at a time (0: none);
    none at all if ``SSO_TURN_WAIT`` is 0. ``SSO_SQLITE_TURN_WAIT``, the setting's earlier
    name, is still read."""
    from .extensions import db  # noqa: PLC0415

    config = app.config
    wait = float(config.get("SQLITE_TURN_WAIT", config.get("TURN_WAIT", 0.25)))
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite":
        at_once = 0 if _in_memory_sqlite(engine) else 1
    elif engine.dialect.name == "postgresql":
        at_once = int(config.get("POSTGRES_TURNS", 3))
    else:
        at_once = 0
    if wait <= 0 or at_once <= 0:
        return None
    turns = Turns(app.wsgi_app, paths, wait, at_once)
    app.wsgi_app = turns  # type: ignore[method-assign]
    return turns


_READ_ENGINE = "sso_read_engine"
_making_read_engine = threading.Lock()


def read_bind() -> Any:
    """What the statements that join no transaction (``sso.driversql.one_statement``: the
    revocation check of introspection and UserInfo, a refresh's read and, on PostgreSQL,
    its one statement that writes the use) take their connection from: ``.connect()`` gives
    one, as an engine's does. Asking ``db.session`` for its bind would make the request's
    ORM session, and making it and removing it at teardown was about a tenth of an
    introspection. (The tests' rolled-back fixture binds this to its one connection, as it
    binds every session.)

    It is an engine of its own, made on the first such read of the process with the main
    engine's settings and ``SSO_DB_READ_POOL_SIZE`` connections, whose connections
    :class:`HeldReads` keeps open between reads. On PostgreSQL its connections stay in
    autocommit, under the same watchdog: one round trip per read, not BEGIN, the statement
    and ROLLBACK, and no switch of the connection's isolation level and back on every read,
    which cost the client about a third of the read's CPU (``docs/performance.md``). On
    SQLite a read outside a transaction begins none; an in-memory database, which another
    engine would not see, is read on the main engine."""
    current_app, db = _request_time.current_app, _request_time.db
    reads = current_app.extensions.get(_READ_ENGINE)
    if reads is not None:
        return reads
    with _making_read_engine:
        reads = current_app.extensions.get(_READ_ENGINE)
        if reads is None:
            engine = _read_engine(db.engine, current_app.config)
            if engine is db.engine:
                reads = engine
            else:
                reads = HeldReads(engine, current_app.config)
                reads.watch(db.engine)  # its own failures are seen as they happen
            current_app.extensions[_READ_ENGINE] = reads
    return reads


def _in_memory_sqlite(engine: Any) -> bool:
    """An in-memory SQLite database: one of its own on each connection of another engine."""
    return bool(engine.dialect.name == "sqlite"
                and engine.url.database in (None, "", ":memory:"))


def _read_engine(main: Any, config: Any) -> Any:
    from sqlalchemy import create_engine  # noqa: PLC0415 - not for the settings alone

    if _in_memory_sqlite(main):
        return main
    options = {**config["SQLALCHEMY_ENGINE_OPTIONS"],
               "pool_size": int(config.get("DB_READ_POOL_SIZE", 5)), "max_overflow": 0}
    if main.dialect.name == "postgresql":
        options["isolation_level"] = "AUTOCOMMIT"
    engine = create_engine(main.url, **options)
    guard(engine, config)
    return engine


class HeldReads:
    """The reads' connections, kept open between reads, at most ``SSO_DB_READ_POOL_SIZE``.

    Taking a connection from the engine and handing it back (SQLAlchemy's ``Connection``
    made and closed, the pool's checkout, reset and checkin, with their events) cost about
    half of a read outside a transaction (``docs/performance.md``): here a read takes the
    connection handed back last and gives it back, under a lock. What the pool does at those
    steps is done here where it still applies: a reader waits ``SSO_DB_POOL_TIMEOUT`` at
    most for a connection (then the pool's ``TimeoutError``: 503); on PostgreSQL a
    connection idle ``SSO_DB_PING_IDLE`` seconds is pinged before it is used, under the
    watchdog, and replaced if the ping fails; a connection a read failed on is not kept,
    and one that lost the server (a disconnect, or a failed ping) closes every idle one, as
    a pool discards its connections after a disconnect. The statements still run through
    SQLAlchemy's ``Connection``: its events, its error handling."""

    def __init__(self, engine: Any, config: Any, size: int | None = None) -> None:
        self.engine = engine
        self.size = int(config.get("DB_READ_POOL_SIZE", 5)) if size is None else size
        self.wait = float(config.get("DB_POOL_TIMEOUT", 5))
        pings = engine.dialect.name == "postgresql" and float(
            config.get("DB_STATEMENT_TIMEOUT", 10))
        self.ping_seconds = _ping_seconds(config) if pings else None
        self.ping_idle = float(config.get("DB_PING_IDLE", 1))
        self.idle: list[tuple[Any, float]] = []  # (connection, handed back at), last on top
        self.opened = 0
        self.available = threading.Condition(threading.Lock())
        _HELD.add(self)

    @contextmanager
    def connect(self) -> Iterator[Any]:
        connection = self._take()
        keep = False
        try:
            yield connection
            keep = not connection.invalidated and not connection.in_transaction()
        finally:
            self._hand_back(connection, keep)

    def _take(self) -> Any:
        with self.available:
            deadline = None
            while not self.idle and self.opened >= self.size:
                deadline = deadline or time.monotonic() + self.wait
                left = deadline - time.monotonic()
                if left <= 0 or not self.available.wait(left):
                    from sqlalchemy import exc  # noqa: PLC0415 - not for the settings alone

                    raise exc.TimeoutError(f"no read connection free within {self.wait} s")
            if self.idle:
                connection, since = self.idle.pop()
            else:
                connection, since = None, 0.0
                self.opened += 1
        if connection is not None and (self.ping_seconds is None
                                       or time.monotonic() - since < self.ping_idle):
            return connection
        try:
            return self._checked(connection)
        except BaseException:
            with self.available:
                self.opened -= 1
                self.available.notify()
            raise

    def _checked(self, connection: Any) -> Any:
        """``connection`` if a ping finds it alive, else a new one from the engine (whose
        pool pings what it hands out)."""
        from sqlalchemy import exc  # noqa: PLC0415 - not for the settings alone

        if connection is not None:
            try:
                ping(connection.connection.dbapi_connection, self.ping_seconds or 0)
            except exc.DisconnectionError:
                connection.invalidate()
                connection.close()
                self._discard_idle()
            else:
                return connection
        return self.engine.connect()

    def watch(self, engine: Any) -> None:
        """Close the idle connections when ``engine`` (on the same server) reports a
        disconnect: the server restarted, and the next request must not be the one that
        finds out on a connection kept from before."""
        from sqlalchemy import event  # noqa: PLC0415 - not for the settings alone

        event.listen(engine, "handle_error", self._after_error)

    def _after_error(self, context: Any) -> None:
        if context.is_disconnect:
            self._discard_idle()

    def _hand_back(self, connection: Any, keep: bool) -> None:
        lost = connection.invalidated
        with self.available:
            if keep:
                self.idle.append((connection, time.monotonic()))
            else:
                self.opened -= 1
            self.available.notify()
        if not keep:
            connection.close()
        if lost:
            self._discard_idle()

    def _discard_idle(self) -> None:
        """After a lost server: close the idle connections rather than hand them back to
        the engine's pool, which would give one out again unchecked (it checks only what
        was handed back ``SSO_DB_PING_IDLE`` seconds ago)."""
        with self.available:
            idle, self.idle = self.idle, []
            self.opened -= len(idle)
            self.available.notify_all()
        for connection, _ in idle:
            connection.invalidate()
            connection.close()

    def forget(self) -> None:
        """In a forked child: drop the parent's connections without closing them (closing
        would end the parent's sessions on the server too)."""
        self.idle, self.opened = [], 0
        self.available = threading.Condition(threading.Lock())
        self.engine.dispose(close=False)


class HeldWrites(HeldReads):
    """The token and authorization endpoints' connections, taken from the main engine's pool
    and kept open between requests, at most ``SSO_DB_HELD_WRITES`` of them
    (:func:`request_writes`).

    As :class:`HeldReads`, with two differences. With all of them in use, a request does not
    wait for one, it takes a connection from the pool as it would without them (and hands it
    back there), so the pool's size and wait stay the only bounds. And a disconnect seen on
    any connection of the engine (the server restarted) closes the idle ones, as the pool
    then renews its own: they are checked out of it, out of its reach."""

    def __init__(self, engine: Any, config: Any, size: int) -> None:
        super().__init__(engine, config, size)
        self.watch(engine)

    @contextmanager
    def connect(self) -> Iterator[Any]:
        with self.available:
            spare = bool(self.idle) or self.opened < self.size
        if not spare:
            with self.engine.connect() as connection:
                yield connection
            return
        with super().connect() as connection:
            yield connection


_HELD: weakref.WeakSet[HeldReads] = weakref.WeakSet()


def _forked() -> None:
    for reads in list(_HELD):
        reads.forget()


os.register_at_fork(after_in_child=_forked)


def init_app(app: Flask) -> None:
    from .extensions import db  # noqa: PLC0415

    with app.app_context():
        guard(db.engine, app.config)
        if db.engine.dialect.name == "sqlite":
            SQLiteWriteGate(float(app.config.get("DB_BUSY_TIMEOUT", 5))).attach(db.engine)


_WRITE_CONNECTIONS = "sso_held_writes"
_making_write_connections = threading.Lock()


def write_bind() -> Any:
    """Where :func:`request_writes` takes its connection: the app's :class:`HeldWrites`, or
    None (``SSO_DB_HELD_WRITES=0``, or an in-memory SQLite database, whose connections the
    engine's pool shares out per thread). The tests' rolled-back fixture binds this to its
    one connection (a ``Connection``), as it binds every session."""
    current_app = _request_time.current_app
    extensions = current_app.extensions
    if _WRITE_CONNECTIONS not in extensions:
        with _making_write_connections:
            if _WRITE_CONNECTIONS not in extensions:
                size = int(current_app.config.get("DB_HELD_WRITES", 4))
                engine = _request_time.db.engine
                extensions[_WRITE_CONNECTIONS] = (
                    HeldWrites(engine, current_app.config, size)
                    if size > 0 and not _in_memory_sqlite(engine) else None)
    return extensions[_WRITE_CONNECTIONS]


class Writes:
    """One request's statements on one connection held for it, in transactions that need no
    ORM session: :func:`connection` begins one on it, :func:`finish` ends it.

    The token endpoint's grants write with the driver's SQL (``sso.driversql``) and load no
    ORM object on their usual path; the ORM session around those statements (made, its
    connection taken from the pool and begun, committed through its unit of work, closed
    and removed at teardown) cost more than the statements themselves: one INSERT and its
    commit took 303–358 CPU-µs that way on SQLite, 123–148 on a held connection
    (``docs/performance.md``). Code that does use the ORM session inside (a client not yet
    cached, the refresh reuse path, and the whole of an authorization, which loads the
    browser's SSO session and user) gets the same connection: the session is bound to it and
    takes control of its transaction (SQLAlchemy's ``join_transaction_mode="control_fully"``),
    so a ``db.session.commit()`` there commits it, as it would without this, and one
    transaction is never split over two connections; what is saved there is the pool's
    checkout and checkin.

    ``nested``: the connection's transaction is someone else's (the tests' rolled-back
    fixture); the request's transactions are SAVEPOINTs in it, committed by their release.
    """

    __slots__ = ("source", "held", "nested", "session", "session_mode", "taking")

    def __init__(self, source: Any, nested: bool, held: Any = None) -> None:
        #: Where the connection comes from (:class:`HeldWrites`), taken on the first
        #: statement: a request whose statements all run alone
        #: (``sso.driversql.one_statement``: PostgreSQL's authorization, refresh and code
        #: exchange) takes none.
        self.source = source
        self.held = held
        self.nested = nested
        self.session: Any = None  #: the ORM session bound to ``held``, if one was
        self.session_mode = ""
        self.taking: Any = None  #: the context that took ``held`` from ``source``

    def begun(self) -> Any:
        """The held connection if a transaction of the request's is open on it, else None."""
        held = self.held
        if held is None:
            return None
        return held if (held.in_nested_transaction() if self.nested
                        else held.in_transaction()) else None

    def held_connection(self) -> Any:
        """The held connection, taken if it was not yet, as it is: in a transaction or not."""
        held = self.held
        if held is None:
            self.taking = self.source.connect()
            held = self.held = self.taking.__enter__()
        return held

    def reads_on_held(self) -> bool:
        """Whether a read outside the request's transaction may run on the held connection:
        on SQLite, whose driver begins a transaction only for a write. (PostgreSQL's would
        begin one, and a read alone there goes to :func:`read_bind`'s autocommit.)"""
        dialect = self.held.dialect if self.held is not None else self.source.engine.dialect
        return dialect.name == "sqlite"  # type: ignore[no-any-return]

    def connection(self, joining: Any = None) -> Any:
        """The held connection, in the request's transaction (begun if none is). The
        request's ORM session, if it has one, takes control of a transaction begun here
        (``joining``: the session asking for it, which is taking control already): its
        objects may have been read alone, before the request wrote
        (``sso.driversql.one_statement``), and a ``db.session.commit()`` must still commit
        what was written here."""
        held = self.held_connection()
        if self.begun() is None:
            if self.nested:
                held.begin_nested()
            else:
                held.begin()
            if joining is None:
                self._join_orm_session()
        return held

    @staticmethod
    def _join_orm_session() -> None:
        db = _request_time.db
        if db.session.registry.has():
            db.session().connection()  # through Session.get_bind: bind() below

    def bind(self, session: Any) -> Any:
        """The bind for ``session`` (the request's ORM session): the held connection, in the
        request's transaction, which the session then controls."""
        if self.session is None:
            self.session, self.session_mode = session, session.join_transaction_mode
            session.join_transaction_mode = "control_fully"
        return self.connection(joining=session)

    def end(self, commit: bool) -> None:
        """Commit (or roll back) the request's open transaction, through the ORM session if
        it took control of it."""
        if self.held is None:
            return
        session = self.session
        if session is not None and session.in_transaction():
            if commit:
                session.commit()
            else:
                session.rollback()
        transaction = (self.held.get_nested_transaction() if self.nested
                       else self.held.get_transaction())
        if transaction is not None and transaction.is_active:
            if commit:
                transaction.commit()
            else:
                transaction.rollback()

    def close(self, failed: BaseException | None = None) -> None:
        """Leave nothing on the connection before it is handed back: what is still open is
        rolled back, and the ORM session lets go of it. ``failed``: what the request raised
        (a connection a request failed on is not kept)."""
        try:
            self.end(commit=False)
        finally:
            if self.session is not None:
                self.session.join_transaction_mode = self.session_mode
            taking, self.taking = self.taking, None
            if taking is not None:
                if failed is None:
                    taking.__exit__(None, None, None)
                else:
                    taking.__exit__(type(failed), failed, failed.__traceback__)


_REQUEST_WRITES: ContextVar[Writes | None] = ContextVar("sso_request_writes", default=None)


def current_writes() -> Writes | None:
    """The :class:`Writes` of the request being answered, if it holds one."""
    return _REQUEST_WRITES.get()


@contextmanager
def request_writes() -> Iterator[None]:
    """For the block (one token or authorization request), the statements run through
    :func:`connection` and the ORM session's run on one connection held for it, without an
    ORM session until something asks for one (:class:`Writes`); :func:`finish` ends its
    transaction, and what is left open at the end is rolled back. Nothing changes where the
    request's ORM session already has a transaction open, or ``write_bind()`` gives none."""
    db = _request_time.db
    if db.session.registry.has() and db.session().in_transaction():
        yield
        return
    source = write_bind()
    if source is None:
        yield
        return
    if isinstance(source, _request_time.Connection):  # the tests' one, in its own transaction
        writes = Writes(None, nested=True, held=source)
    else:
        writes = Writes(source, nested=False)
    token = _REQUEST_WRITES.set(writes)
    failed = None
    try:
        yield
    except BaseException as error:
        failed = error
        raise
    finally:
        _REQUEST_WRITES.reset(token)
        writes.close(failed)


def connection() -> Any:
    """The connection the request's statements run on, in its transaction (begun if none
    is): the held one of :func:`request_writes`, else the ORM session's."""
    writes = _REQUEST_WRITES.get()
    if writes is not None:
        return writes.connection()
    return _request_time.db.session.connection()


def finish(commit: bool) -> None:
    """End the request's transaction: commit it, or roll it back."""
    writes = _REQUEST_WRITES.get()
    if writes is not None:
        writes.end(commit)
        return
    db = _request_time.db
    if db.session.registry.has():
        if commit:
            db.session.commit()
        else:
            db.session.rollback()


def commit_last() -> None:
    """Commit the request's transaction through its ORM session, where the request reads
    nothing of what that session holds afterwards (an authorization's code, committed just
    before its redirect): the objects are left as they are, not expired for a reload that
    nobody asks for (a fifth of that commit's cost). The session is the request's own and
    is removed when the request ends."""
    session = _request_time.db.session()
    keep = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = keep
