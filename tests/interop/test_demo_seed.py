"""The demo seed is idempotent and keeps the demo apps' secrets working across reruns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from sso.demo.seed import DEMO_APPS, DEMO_PASSWORD, DEMO_USERS, SECRETS_FILE, seed


@pytest.fixture
def instance(tmp_path: Path) -> str:
    return str(tmp_path)


def _state(app: Flask) -> dict[str, Any]:
    from sso.oidc.clients import get
    from sso.users.service import find_by_login

    with app.app_context():
        users = {}
        for spec in DEMO_USERS:
            user = find_by_login(spec["username"])
            assert user is not None
            users[spec["username"]] = sorted((r.client_id, r.name) for r in user.roles)
        apps = {a["client_id"]: get(a["client_id"]) for a in DEMO_APPS}
        return {"users": users,
                "apps": {k: (c.redirect_uris, c.post_logout_redirect_uris, c.first_party,
                             c.secret_hash) for k, c in apps.items() if c}}


def test_seed_creates_the_demo_and_a_rerun_changes_nothing(app: Flask, instance: str) -> None:
    from sso.accounts.service import passwords
    from sso.oidc.clients import get
    from sso.users.service import find_by_login

    with app.app_context():
        first = seed(instance)
    state = _state(app)
    with app.app_context():
        assert seed(instance) == first
    assert _state(app) == state

    assert set(first) == {"erp", "crm", "inventory"}
    assert json.loads((Path(instance) / SECRETS_FILE).read_text()) == first
    assert (Path(instance) / SECRETS_FILE).stat().st_mode & 0o077 == 0
    assert state["apps"]["erp"][0] == ["http://127.0.0.1:5001/callback"]
    assert state["apps"]["inventory"][1] == ["http://127.0.0.1:5003/"]
    mixes = [tuple(roles) for roles in state["users"].values()]
    assert len(set(mixes)) == len(mixes), "every demo user has a different mix of roles"
    with app.app_context():
        admin, alice = find_by_login("admin"), find_by_login("alice")
        assert admin is not None and admin.is_admin
        assert alice is not None and not alice.is_admin
        assert passwords().verify(alice.password_hash, DEMO_PASSWORD)
        client = get("erp")
        assert client is not None and client.check_client_secret(first["erp"])


def test_seed_issues_a_new_secret_when_the_stored_one_is_lost(app: Flask, instance: str
                                                              ) -> None:
    from sso.oidc.clients import get

    with app.app_context():
        first = seed(instance)
    (Path(instance) / SECRETS_FILE).unlink()
    with app.app_context():
        second = seed(instance)
        client = get("crm")
        assert client is not None
        assert second["crm"] != first["crm"]
        assert client.check_client_secret(second["crm"])
        assert not client.check_client_secret(first["crm"])


def test_seed_applies_the_app_policy_of_demo_apps(app: Flask, instance: str) -> None:
    from sso.oidc.clients import get

    apps = [{**DEMO_APPS[0], "policy": {"qr_number_matching": True}}]
    with app.app_context():
        seed(instance, apps=apps)
        client = get("erp")
        assert client is not None and client.qr_number_matching is True
        assert client.mfa_required is False  # what the entry does not name is the default


def test_seed_applies_the_demo_policies_and_provisions_existing_employees(
        app: Flask, instance: str) -> None:
    from sso.apps import service as app_accounts
    from sso.oidc.clients import get
    from sso.outbox import OutboxMessage
    from sso.users.service import find_by_login

    with app.app_context():
        seed(instance)
        seed(instance)
        erp, crm, inventory = get("erp"), get("crm"), get("inventory")
        assert erp.mfa_required is True
        assert erp.events_endpoint == "http://127.0.0.1:5001/sso/events"
        assert app_accounts.policy_of(inventory) == "approval"
        assert app_accounts.policy_of(crm) == "auto" and not crm.mfa_required
        assert crm.events_endpoint is None

        # Users with inventory roles are let in; alice (no inventory role) will have to wait.
        provisioned = {account.user.username: account.status
                       for account in app_accounts.list_accounts("inventory")}
        assert provisioned == {"admin": "provisioned", "sales": "provisioned",
                               "warehouse": "provisioned"}
        assert app_accounts.list_accounts("erp") == []  # auto: the first sign-in activates

        newhire, trainee = find_by_login("newhire"), find_by_login("trainee")
        assert newhire.status == "invited" and newhire.password_hash is None
        assert [(r.client_id, r.name) for r in newhire.roles] == [("erp", "accountant")]
        assert trainee.status == "active" and trainee.must_change_password
        # One invitation, however often the seed runs.
        mails = OutboxMessage.query.filter_by(recipient="newhire@example.com").all()
        assert [m.purpose for m in mails] == ["activation"]
        assert "/activate/" in mails[0].body_text


def test_seed_validates_the_policy_and_an_empty_events_endpoint_removes_it(
        app: Flask, instance: str) -> None:
    from sso.apps.service import AppsError
    from sso.oidc.clients import get

    erp = DEMO_APPS[0]
    with app.app_context():
        seed(instance, apps=[erp], users=[])
        assert get("erp").events_endpoint == "http://127.0.0.1:5001/sso/events"
        seed(instance, apps=[{**erp, "policy": {"events_endpoint": "", "mfa_required": False}}],
             users=[])
        assert get("erp").events_endpoint is None and get("erp").mfa_required is False
        with pytest.raises(AppsError):
            seed(instance, apps=[{**erp, "policy": {"activation": "sometimes"}}], users=[])


def test_seed_groups_change_nothing_the_demo_users_can_do(app: Flask, instance: str) -> None:
    """The departments show inherited roles without giving any demo user a role they did not
    already hold directly (the README's tour stays true)."""
    from sso.demo.seed import DEMO_APPS, DEMO_GROUPS, LIFECYCLE_USERS
    from sso.users import groups
    from sso.users.service import find_by_login

    with app.app_context():
        seed(instance)
        seed(instance)  # a rerun adds nothing twice
        assert [g.name for g, _count in groups.with_member_counts()] == ["finance", "sales"]
        for spec in DEMO_GROUPS:
            group = groups.find(spec["name"])
            assert [u.username for u in groups.members(group)] == sorted(spec["members"])
            assert {(r.client_id, r.name) for r in group.roles} == {
                (c, n) for c, names in spec["roles"].items() for n in names}
        for spec in [*DEMO_USERS, *LIFECYCLE_USERS]:
            user = find_by_login(spec["username"])
            for demo_app in DEMO_APPS:
                client_id = demo_app["client_id"]
                direct = sorted(r.name for r in user.roles if r.client_id == client_id)
                assert user.roles_in(client_id) == direct, (spec["username"], client_id)
        alice = find_by_login("alice")
        assert ("erp", "accountant", "finance") in groups.role_sources(alice)
