"""The reads outside a transaction keep their connections open between reads
(``sso.database.HeldReads``): what the pool did at each checkout still holds, on SQLite and
PostgreSQL, against the real database."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import exc, literal, select, text

from sso import database, driversql
from sso.dbtypes import utcnow
from sso.extensions import db
from sso.oidc import tokens

#: Real commits, seen by other connections.
pytestmark = pytest.mark.truncate


@pytest.fixture
def reads(app: Flask) -> Iterator[Any]:
    with app.app_context():
        yield database.read_bind()


def own_reads(app: Flask, **settings: Any) -> database.HeldReads:
    """A HeldReads of its own on the test's database, with ``settings`` over the app's."""
    with app.app_context():
        config = {**app.config, **settings}
        return database.HeldReads(database._read_engine(db.engine, config), config)


def select_one(connection: Any) -> Any:
    """``SELECT 1`` as the reads run it: on the driver's cursor, beginning no transaction."""
    (value,), = driversql.rows(connection, _SELECT_ONE, {})
    return value


_SELECT_ONE = select(literal(1).label("one"))


def test_a_read_takes_the_connection_handed_back_last_and_sees_later_commits(
        app: Flask, reads: Any) -> None:
    assert isinstance(reads, database.HeldReads)
    assert reads.engine is not db.engine
    jti = secrets.token_hex(8)
    with reads.connect() as first:
        pass
    assert not tokens.is_revoked(jti)
    db.session.add(tokens.RevokedAccessToken(jti=jti, expires_at=utcnow() + timedelta(hours=1)))
    db.session.commit()
    with reads.connect() as again:
        assert again is first
    assert tokens.is_revoked(jti)  # no snapshot kept from the read before the commit
    assert reads.idle[-1][0] is first  # on top again (earlier tests may have left others)


def test_readers_wait_for_a_free_connection_and_no_longer_than_the_pool_timeout(
        app: Flask) -> None:
    reads = own_reads(app, DB_READ_POOL_SIZE=1, DB_POOL_TIMEOUT=0.3)
    taken = threading.Event()
    release = threading.Event()
    held: list[Any] = []

    def hold() -> None:
        with reads.connect() as connection:
            held.append(connection)
            taken.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(10)
        started = time.monotonic()
        with pytest.raises(exc.TimeoutError), reads.connect():
            pass
        assert 0.25 < time.monotonic() - started < 5
        threading.Timer(0.1, release.set).start()
        with reads.connect() as waited:  # handed over as soon as the holder is done
            assert waited is held[0]
    finally:
        release.set()
        holder.join(10)
    assert reads.opened == 1


def test_a_failed_read_does_not_keep_its_connection(app: Flask) -> None:
    reads = own_reads(app)
    with pytest.raises(exc.DBAPIError), reads.connect() as connection:
        driversql.rows(connection, text("SELECT no_such_column FROM no_such_table"), {})
    assert (reads.idle, reads.opened) == ([], 0)
    with reads.connect() as connection:
        assert select_one(connection) == 1


def test_a_forked_child_reads_on_connections_of_its_own(app: Flask, reads: Any) -> None:
    jti = secrets.token_hex(8)
    assert not tokens.is_revoked(jti)
    parents = [c for c, _ in reads.idle]
    pid = os.fork()
    if pid == 0:  # the child: a read, then out without any cleanup of the parent's
        code = 1
        try:
            code = 0 if (tokens.is_revoked(jti) is False and reads.idle
                         and reads.idle[0][0] not in parents) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with reads.connect() as connection:  # the parent's connection still works
        assert connection is parents[-1]
        assert select_one(connection) == 1
