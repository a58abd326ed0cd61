"""The database fixtures isolate tests: each test's rows are gone before the next one, on
SQLite and on PostgreSQL, whether the test was rolled back (the default) or committed for
real and had its tables emptied (``@pytest.mark.truncate``).

The probe tests below run in either order; whichever runs second on a backend fails if the
first one's rows survived.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

PROBE = "fixture-probe"


def _users_named(app: Flask, username: str) -> int:
    from sso.extensions import db
    from sso.users.models import User

    with app.app_context():
        return len(db.session.scalars(sa.select(User).where(User.username == username)).all())


def _committed_elsewhere(app: Flask, username: str) -> int:
    """Count the rows a connection of its own (another client of the database) sees."""
    engine = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with engine.connect() as connection:
            return int(connection.execute(
                sa.text("SELECT count(*) FROM users WHERE username = :u"), {"u": username},
            ).scalar_one())
    finally:
        engine.dispose()


def _probe(app: Flask, make_user: Any, client: Any) -> None:
    """Start clean, then commit a user through a service and one through a request."""
    assert _users_named(app, PROBE) == 0, "a row of an earlier test survived"
    assert client.get("/login").status_code == 200  # a request commits in its own session
    make_user(PROBE)
    assert _users_named(app, PROBE) == 1


def test_rolled_back_test_one(app: Flask, make_user: Any, client: Any) -> None:
    _probe(app, make_user, client)
    assert _committed_elsewhere(app, PROBE) == 0, "the commit left the test's transaction"


def test_rolled_back_test_two(app: Flask, make_user: Any, client: Any) -> None:
    _probe(app, make_user, client)
    assert _committed_elsewhere(app, PROBE) == 0, "the commit left the test's transaction"


@pytest.mark.truncate
def test_truncated_test(app: Flask, make_user: Any, client: Any) -> None:
    _probe(app, make_user, client)
    assert _committed_elsewhere(app, PROBE) == 1, "a truncate test commits for real"


def test_a_rollback_in_the_app_undoes_only_its_own_work(app: Flask, make_user: Any) -> None:
    from sso.accounts.service import create_user
    from sso.extensions import db

    make_user("kept")
    with app.app_context():
        create_user("undone", password=None, email="undone@example.com", name="Undone")
        db.session.flush()
        db.session.rollback()
    assert _users_named(app, "kept") == 1
    assert _users_named(app, "undone") == 0


def test_another_thread_in_a_rolled_back_test_is_refused_with_the_mark_to_use(
        app: Flask) -> None:
    errors: list[BaseException] = []

    def other() -> None:
        try:
            _users_named(app, PROBE)
        except RuntimeError as error:
            errors.append(error)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert errors and "pytest.mark.truncate" in str(errors[0])
