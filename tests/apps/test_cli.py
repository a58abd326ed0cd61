"""``sso clients create/update`` policy options and the ``sso apps`` commands."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sso.cli import cli


def run(runner: Any, *args: str, ok: bool = True) -> Any:
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result


def test_clients_create_and_update_set_the_policies(runner: Any) -> None:
    created = json.loads(run(runner, "clients", "create", "--name", "ERP",
                             "--redirect-uri", "https://erp.example.com/cb",
                             "--activation", "approval",
                             "--events-endpoint", "https://erp.example.com/events",
                             "--json").output)
    assert created["policy"] == {"activation": "approval", "mfa_required": False,
                                 "remember_device": True, "qr_number_matching": False,
                                 "qr_refuse_remote": False, "ciba_mode": None,
                                 "ciba_notification_endpoint": None,
                                 "events_endpoint": "https://erp.example.com/events"}
    client_id = created["client_id"]
    run(runner, "clients", "update", client_id, "--activation", "invite",
        "--events-endpoint", "http://127.0.0.1:8080/events")
    listed = json.loads(run(runner, "clients", "list", "--json").output)
    assert listed[0]["policy"]["activation"] == "invite"
    assert listed[0]["policy"]["events_endpoint"] == "http://127.0.0.1:8080/events"
    run(runner, "clients", "update", client_id, "--events-endpoint", "")
    listed = json.loads(run(runner, "clients", "list", "--json").output)
    assert listed[0]["policy"]["activation"] == "invite"
    assert listed[0]["policy"]["events_endpoint"] is None


@pytest.mark.parametrize("args", [
    ["--activation", "sometimes"],
    ["--events-endpoint", "http://erp.example.com/events"],
    ["--events-endpoint", "not a url"],
])
def test_bad_policies_are_refused(runner: Any, args: list[str]) -> None:
    result = run(runner, "clients", "create", "--name", "ERP",
                 "--redirect-uri", "https://erp.example.com/cb", *args, ok=False)
    assert "Error" in result.output
    assert json.loads(run(runner, "clients", "list", "--json").output) == []


def test_update_of_an_unknown_client_fails(runner: Any) -> None:
    assert "no client" in run(runner, "clients", "update", "nope", "--activation", "auto",
                              ok=False).output


def test_apps_commands(runner: Any, alice: Any, make_app: Any) -> None:
    erp = make_app("invite")
    run(runner, "apps", "provision", erp.client_id, "alice")
    listed = run(runner, "apps", "list").output
    assert "alice" in listed and "provisioned" in listed and "cli:" in listed
    assert run(runner, "apps", "list", "--status", "active").output == ""
    run(runner, "apps", "approve", erp.client_id, "alice")
    assert "active" in run(runner, "apps", "list", erp.client_id).output
    assert "alice" in run(runner, "apps", "list", "--status", "active").output
    assert "already active" in run(runner, "apps", "approve", erp.client_id, "alice",
                                   ok=False).output
    assert "use revoke" in run(runner, "apps", "deny", erp.client_id, "alice", ok=False).output
    run(runner, "apps", "revoke", erp.client_id, "alice")
    assert "revoked" in run(runner, "apps", "list", erp.client_id).output
    assert run(runner, "apps", "list", "other-app").output == ""


@pytest.mark.parametrize("args", [
    ["approve", "nope", "alice"],
    ["approve", "{client}", "nobody"],
    ["revoke", "{client}", "alice"],
])
def test_apps_commands_refuse_bad_input(runner: Any, alice: Any, make_app: Any,
                                        args: list[str]) -> None:
    erp = make_app("approval")
    args = [a.replace("{client}", erp.client_id) for a in args]
    assert "Error" in run(runner, "apps", *args, ok=False).output
