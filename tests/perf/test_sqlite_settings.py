"""The SQLite connection settings the provider runs with (``sso.extensions``): WAL with
``synchronous=NORMAL``, foreign keys on, and a write-ahead log checkpointed every
``SQLITE_WAL_AUTOCHECKPOINT`` pages rather than SQLite's 1,000."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, text

from sso.extensions import SQLITE_WAL_AUTOCHECKPOINT


def test_every_connection_gets_the_provider_s_settings(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'sso.sqlite3'}")
    try:
        with engine.connect() as connection:
            def setting(name: str) -> object:
                return connection.execute(text(f"PRAGMA {name}")).scalar_one()

            assert setting("journal_mode") == "wal"
            assert setting("synchronous") == 1  # NORMAL
            assert setting("foreign_keys") == 1
            assert setting("busy_timeout") == 5000
            assert setting("wal_autocheckpoint") == SQLITE_WAL_AUTOCHECKPOINT == 10_000
    finally:
        engine.dispose()


def test_the_log_is_not_copied_back_before_that_many_pages(tmp_path: Path) -> None:
    """A thousand pages' worth of commits stays in the log: SQLite's default would have
    checkpointed it (the log would have been reset and reused from its start)."""
    path = tmp_path / "sso.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE rows (payload BLOB)"))
        for _ in range(1_200):  # each commit appends at least one 4 KiB page to the log
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO rows VALUES (zeroblob(3000))"))
        wal = Path(f"{path}-wal")
        assert wal.stat().st_size > 1_100 * 4096
        untouched = sqlite3.connect(path)  # a plain connection: SQLite's own default
        assert untouched.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
        untouched.close()
    finally:
        engine.dispose()
