"""The schema revision a database is at, read with its driver alone.

Alembic keeps the applied revision in one row of ``alembic_version``. Reading it through
Alembic and SQLAlchemy costs a second of imports on a small machine; through ``sqlite3`` or
``psycopg`` it costs a query, so ``sso db current`` answers at once (and so could a readiness
probe). Schema changes still go only through :mod:`sso.migrate`.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from urllib.parse import unquote, urlsplit

VERSION_QUERY = "SELECT version_num FROM alembic_version"


class SchemaVersionError(RuntimeError):
    """The database could not be read; the message says why."""


def applied_revision(database_uri: str) -> str | None:
    """The revision recorded in the database at ``database_uri`` (a SQLAlchemy URL, as in
    ``SQLALCHEMY_DATABASE_URI``), or ``None`` for a database no migration has touched."""
    scheme = database_uri.split(":", 1)[0]
    if scheme.split("+", 1)[0] == "sqlite":
        return _sqlite(database_uri)
    if scheme.split("+", 1)[0] in ("postgresql", "postgres"):
        return _postgresql(database_uri)
    return _with_alembic(database_uri)


def _sqlite(database_uri: str) -> str | None:
    import sqlite3  # noqa: PLC0415

    path = unquote(urlsplit(database_uri).path[1:])
    if not path or path == ":memory:" or not Path(path).exists():
        return None
    try:
        with closing(sqlite3.connect(path)) as connection:
            row = connection.execute(VERSION_QUERY).fetchone()
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return None
        raise SchemaVersionError(f"cannot read {path}: {error}") from None
    return str(row[0]) if row else None


def _postgresql(database_uri: str) -> str | None:
    import psycopg  # noqa: PLC0415

    conninfo = "postgresql://" + database_uri.split("://", 1)[1]  # libpq's URI: no driver
    try:
        with psycopg.connect(conninfo, connect_timeout=10) as connection:
            row = connection.execute(VERSION_QUERY).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    except psycopg.Error as error:
        message = " ".join(str(error).split())  # libpq's message spans lines
        raise SchemaVersionError(f"cannot read the database: {message}") from None
    return str(row[0]) if row else None


def _with_alembic(database_uri: str) -> str | None:
    """Any other database: Alembic's own reader, through SQLAlchemy."""
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415
    from sqlalchemy import create_engine  # noqa: PLC0415

    engine = create_engine(database_uri)
    try:
        with engine.connect() as connection:
            revision: str | None = MigrationContext.configure(connection).get_current_revision()
            return revision
    finally:
        engine.dispose()
