"""The ``sso`` command, run against the test app's database."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sso.cli import cli


def run(runner: Any, *args: str, ok: bool = True) -> Any:
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result


@pytest.mark.truncate  # `users list` reads through its own driver connection
def test_users_create_and_list(runner: Any) -> None:
    run(runner, "users", "create", "--username", "Bob", "--email", "bob@example.com",
        "--phone", "+86 138 0013 8000", "--name", "鲍勃", "--password", "Long-password-1",
        "--admin")
    listed = run(runner, "users", "list").output
    assert "bob" in listed and "admin" in listed


@pytest.mark.parametrize("args", [
    ["--username", "x", "--password", "p"],
    ["--username", "bad name", "--password", "Long-password-1"],
    ["--username", "carol", "--email", "not-an-email", "--password", "Long-password-1"],
])
def test_users_create_refuses_bad_input(runner: Any, args: list[str]) -> None:
    assert "Error" in run(runner, "users", "create", *args, ok=False).output


def test_duplicate_users_are_refused(runner: Any, alice: Any) -> None:
    result = run(runner, "users", "create", "--username", "Alice", "--password", "x" * 12,
                 ok=False)
    assert "already exists" in result.output


@pytest.mark.truncate  # the light listing reads on a connection of its own
def test_clients_create_json_prints_the_secret_once(runner: Any, client: Any) -> None:
    created = json.loads(run(runner, "clients", "create", "--name", "CRM",
                             "--redirect-uri", "https://crm.example.com/cb",
                             "--redirect-uri", "https://crm.example.com/cb2",
                             "--post-logout-redirect-uri", "https://crm.example.com/",
                             "--first-party", "--json").output)
    assert created["client_secret"].startswith("ssos_")
    assert created["redirect_uris"] == ["https://crm.example.com/cb", "https://crm.example.com/cb2"]
    listed = json.loads(run(runner, "clients", "list", "--json").output)
    assert [c["client_id"] for c in listed] == [created["client_id"]]
    assert "client_secret" not in listed[0]
    text = run(runner, "clients", "list").output
    assert created["client_secret"] not in text


@pytest.mark.parametrize("args", [
    ["--name", "X", "--redirect-uri", "http://crm.example.com/cb"],
    ["--name", "X", "--redirect-uri", "https://crm.example.com/cb#frag"],
    ["--name", "X", "--redirect-uri", "crm/cb"],
    ["--name", "X"],
    ["--name", "X", "--public", "--grant-type", "client_credentials"],
    ["--name", "X", "--redirect-uri", "https://a.example.com/cb", "--scope", 'bad"scope'],
])
def test_clients_create_refuses_unsafe_registrations(runner: Any, args: list[str]) -> None:
    assert "Error" in run(runner, "clients", "create", *args, ok=False).output


def test_public_native_client_may_use_a_private_scheme(runner: Any) -> None:
    created = json.loads(run(runner, "clients", "create", "--name", "Mobile", "--public",
                             "--redirect-uri", "com.example.app:/callback", "--json").output)
    assert "client_secret" not in created and created["public"] is True


def test_roles_define_grant_list_revoke(runner: Any, alice: Any, erp: Any) -> None:
    run(runner, "roles", "define", erp.client_id, "accountant", "--description", "Books")
    run(runner, "roles", "grant", "alice", erp.client_id, "accountant")
    assert "alice" in run(runner, "roles", "list", erp.client_id).output
    run(runner, "roles", "revoke", "alice", erp.client_id, "accountant")
    assert "alice" not in run(runner, "roles", "list", erp.client_id).output
    run(runner, "roles", "grant", "alice", erp.client_id, "nope", ok=False)
    run(runner, "roles", "define", "no-such-app", "x", ok=False)
    run(runner, "roles", "delete", erp.client_id, "accountant")


def test_clients_delete_removes_roles_and_tokens(runner: Any, flow: Any, erp: Any,
                                                 app: Any) -> None:
    run(runner, "roles", "define", erp.client_id, "viewer")
    flow.token(flow.authorize()["code"])
    run(runner, "clients", "delete", erp.client_id)
    with app.app_context():
        from sso.extensions import db
        from sso.oidc.models import RefreshToken
        from sso.users.models import AppRole

        assert db.session.scalars(db.select(AppRole)).all() == []
        assert db.session.scalars(db.select(RefreshToken)).all() == []
    run(runner, "clients", "delete", erp.client_id, ok=False)


def test_keys_rotate_and_list(runner: Any) -> None:
    before = run(runner, "keys", "list").output
    run(runner, "keys", "rotate", "--alg", "ES256")
    after = run(runner, "keys", "list").output
    assert before != after and "retired" in after


def test_db_commands(runner: Any) -> None:
    assert run(runner, "db", "current").output.strip() != "(empty)"
    run(runner, "db", "check")
    run(runner, "init")


def test_purge_removes_expired_rows(runner: Any) -> None:
    assert "removed" in run(runner, "purge").output


def test_db_current_reads_what_alembic_reads(app: Any, runner: Any, tmp_path: Any) -> None:
    """The driver-only reader (``sso db current``) agrees with Alembic's, and an untouched
    database is (empty)."""
    from sso import migrate
    from sso.schema_version import applied_revision

    revision = migrate.current_revision(app)
    assert revision and applied_revision(app.config["SQLALCHEMY_DATABASE_URI"]) == revision
    assert run(runner, "db", "current").output.strip() == revision
    assert applied_revision(f"sqlite:///{tmp_path / 'new.sqlite3'}") is None
    (tmp_path / "blank.sqlite3").touch()
    assert applied_revision(f"sqlite:///{tmp_path / 'blank.sqlite3'}") is None
