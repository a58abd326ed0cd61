"""A database of its own for one measured run, so a bench script never writes its seed into
the database a URL names (the tests' server database among them)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit


@contextmanager
def fresh_database(url: str | None, prefix: str) -> Iterator[str | None]:
    """``url`` itself (SQLite, or none), or for PostgreSQL a fresh database named
    ``prefix`` + a random part on that URL's server, dropped afterwards."""
    if not url or not url.startswith("postgresql"):
        yield url
        return
    import psycopg  # noqa: PLC0415

    admin = urlsplit(url.replace("postgresql+psycopg://", "postgresql://", 1))
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin.geturl(), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin.geturl(), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
