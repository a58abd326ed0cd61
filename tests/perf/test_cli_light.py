"""``sso users list`` and ``sso clients list`` read the database through its driver alone
(issue 15: a simple command starts in under 0.5 s; the time is measured by
``bench/cli_start.py``, not here). These check what they load and that they print the same
lines as before, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

# The command runs in another process and must see the rows the test wrote: no rollback.
pytestmark = pytest.mark.truncate

PROBE = ("import sys\n"
         "from sso.cli import cli\n"
         "cli.main(sys.argv[1:], standalone_mode=False)\n"
         "heavy = {'flask', 'sqlalchemy', 'redis', 'alembic', 'authlib', 'werkzeug'}\n"
         "print('loaded:', sorted(heavy & {name.split('.')[0] for name in sys.modules}))\n")


def _sso(app: Flask, tmp_path: Path, *args: str) -> list[str]:
    """Run ``sso ARGS`` in a fresh process against the test's database, as an operator would
    (the settings from the environment); return its lines."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SSO_")}
    env.update({"SSO_ENV": "development", "SSO_INSTANCE_PATH": str(tmp_path / "instance"),
                "SSO_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
                "SSO_REDIS_URL": "redis://127.0.0.1:6379/0"})
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.truncate  # another process reads the rows
def test_users_list_builds_no_app(app: Flask, make_user: Any, tmp_path: Path) -> None:
    make_user("bob", email=None)
    make_user("alice", is_admin=True)
    lines = _sso(app, tmp_path, "users", "list")
    assert lines[-1] == "loaded: []"
    assert [line.split()[0] for line in lines[:-1]] == ["alice", "bob"]  # by username
    assert lines[0].split()[1:] == ["alice@example.com", "active", "admin"]
    assert lines[1].split()[1:] == ["-", "active"]


@pytest.mark.truncate
def test_clients_list_builds_no_app(app: Flask, make_client: Any, tmp_path: Path) -> None:
    erp = make_client("ERP")
    spa = make_client("SPA", first_party=False, public=True,
                      grant_types=["authorization_code"])
    lines = _sso(app, tmp_path, "clients", "list")
    assert lines[-1] == "loaded: []"
    assert [line.split() for line in lines[:-1]] == [
        [erp.client_id, "ERP", "confidential", "first-party"],
        [spa.client_id, "SPA", "public"],
    ]


def test_an_unreadable_database_is_one_line(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SSO_")}
    env.update({"SSO_ENV": "development", "SSO_INSTANCE_PATH": str(tmp_path / "instance"),
                "SSO_DATABASE_URL": f"sqlite:///{tmp_path / 'missing.sqlite3'}"})
    done = subprocess.run([str(Path(sys.executable).with_name("sso")), "users", "list"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: no database at ") and done.stderr.count("\n") == 1
