"""Read-only queries through the database driver alone, for commands that must start at once.

Building the app to list users costs about a second of imports (Flask, SQLAlchemy's ORM,
Authlib, redis-py) on a small machine; ``sqlite3`` or ``psycopg`` with one fixed statement
costs a query. :func:`rows` runs a statement that way for the two databases the provider
supports, and through SQLAlchemy (still without the app) for any other URL, so a listing has
one statement whichever way it runs. Changes never go this way: they go through the services.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit


class DatabaseUnreadable(RuntimeError):
    """The database could not be read; the message says why, in one line."""


def rows(database_uri: str, statement: str) -> list[tuple[Any, ...]]:
    """The rows ``statement`` (plain SQL, no parameters) returns from ``database_uri`` (a
    SQLAlchemy URL, as in ``SQLALCHEMY_DATABASE_URI``)."""
    scheme = database_uri.split(":", 1)[0].split("+", 1)[0]
    if scheme == "sqlite":
        return _sqlite(database_uri, statement)
    if scheme in ("postgresql", "postgres"):
        return _postgresql(database_uri, statement)
    return _sqlalchemy(database_uri, statement)


def _sqlite(database_uri: str, statement: str) -> list[tuple[Any, ...]]:
    import sqlite3  # noqa: PLC0415

    path = unquote(urlsplit(database_uri).path[1:])
    if not path or path == ":memory:" or not Path(path).exists():
        raise DatabaseUnreadable(f"no database at {path or database_uri}: run sso init")
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            return list(connection.execute(statement).fetchall())
    except sqlite3.Error as error:
        raise DatabaseUnreadable(f"cannot read {path}: {error}") from None


def _postgresql(database_uri: str, statement: str) -> list[tuple[Any, ...]]:
    import psycopg  # noqa: PLC0415

    conninfo = "postgresql://" + database_uri.split("://", 1)[1]  # libpq's URI: no driver
    try:
        with psycopg.connect(conninfo, connect_timeout=10) as connection:
            return list(connection.execute(statement).fetchall())  # type: ignore[arg-type]
    except psycopg.Error as error:
        message = " ".join(str(error).split())  # libpq's message spans lines
        raise DatabaseUnreadable(f"cannot read the database: {message}") from None


def _sqlalchemy(database_uri: str, statement: str) -> list[tuple[Any, ...]]:
    from sqlalchemy import create_engine, text  # noqa: PLC0415
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

    engine = create_engine(database_uri)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(statement))]
    except SQLAlchemyError as error:
        raise DatabaseUnreadable(f"cannot read the database: {error}") from None
    finally:
        engine.dispose()
