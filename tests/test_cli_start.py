"""How the ``sso`` command starts: every ``--help`` with no environment at all, a production
refusal in one line, and nothing heavy (Flask, SQLAlchemy, the demo) loaded to list commands.
Start-up time is measured in ``bench/``, not asserted here."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import pytest

from sso.cli import cli

SSO = Path(sys.executable).with_name("sso")
#: How this Python caches bytecode changes no command; the test run's choice is kept.
BYTECODE = {name: os.environ[name] for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
            if name in os.environ}


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    context = click.Context(group, info_name="sso")
    paths = [prefix]
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            paths += _command_paths(command, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


def test_every_help_works_with_no_environment() -> None:
    paths = _command_paths(cli)
    assert ("users", "invite") in paths and ("demo",) in paths and ("db", "current") in paths

    def helped(path: tuple[str, ...]) -> tuple[tuple[str, ...], subprocess.CompletedProcess[str]]:
        return path, subprocess.run([str(SSO), *path, "--help"], env=dict(BYTECODE),
                                    capture_output=True, text=True, timeout=300, cwd="/")

    with ThreadPoolExecutor(max_workers=4) as pool:
        for path, result in pool.map(helped, paths):
            assert result.returncode == 0 and not result.stderr, (path, result.stderr)
            assert result.stdout.startswith(f"Usage: sso {' '.join(path)}".rstrip()), path


def test_listing_commands_loads_neither_flask_nor_the_demo() -> None:
    """`sso --help` builds no app: what it imports stays small, so it starts at once (and the
    image, which has no demo dependencies, lists every command)."""
    probe = ("import sys\n"
             "from sso.cli import cli\n"
             "cli.main(['--help'], standalone_mode=False)\n"
             "for group in ('users', 'clients', 'roles', 'apps', 'mfa', 'qr', 'keys', 'db'):\n"
             "    cli.main([group, '--help'], standalone_mode=False)\n"
             "heavy = {'flask', 'sqlalchemy', 'requests', 'redis', 'alembic', 'authlib'}\n"
             "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))\n")
    result = subprocess.run([sys.executable, "-c", probe], env=dict(BYTECODE),
                            capture_output=True, text=True, timeout=300, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(("settings", "named"), [
    ({}, "set SSO_DATABASE_URL and SSO_REDIS_URL:"),
    ({"SSO_DATABASE_URL": "postgresql://sso@db/sso"}, "set SSO_REDIS_URL:"),
    ({"SSO_REDIS_URL": "redis://redis:6379/0"}, "set SSO_DATABASE_URL:"),
])
@pytest.mark.parametrize("command", [["serve"], ["db", "upgrade"], ["users", "list"],
                                     ["db", "current"]])
def test_a_production_start_without_stores_is_one_line(
        tmp_path: Path, settings: dict[str, str], named: str, command: list[str]) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **BYTECODE,
           "SSO_INSTANCE_PATH": str(tmp_path / "instance"),
           "SSO_ISSUER": "https://sso.example.com", "SSO_SECRET_KEY": "s" * 40, **settings}
    result = subprocess.run([str(SSO), *command], env=env, capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: {named}") and result.stderr.count("\n") == 1
    assert "development" in result.stderr  # and how a laptop gets its fallbacks
    assert not (tmp_path / "instance").exists()  # nothing was created on the way
