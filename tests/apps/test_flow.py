"""The activation step in the sign-in flow, through the test client, for each policy."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from sso.apps import service
from sso.extensions import db
from sso.oidc.clients import get
from sso.oidc.keys import decode_jws
from sso.users.service import define_role, find_by_login, grant_role
from tests.apps.conftest import app_result, run_flow
from tests.conftest import Flow, basic, csrf_of


@pytest.fixture
def signed_in(client: FlaskClient, alice: Any) -> FlaskClient:
    """A browser with alice's SSO session (for prompt=none)."""
    Flow(client, None).login()
    return client


def _admin(app: Any, action: str, client_id: str, login: str = "alice") -> None:
    with app.app_context():
        getattr(service, action)(find_by_login(login), get(client_id), actor="cli:test")
        db.session.commit()


def test_auto_gets_a_code_and_roles_travel_in_the_id_token(
        app: Any, client: FlaskClient, alice: Any, make_app: Any) -> None:
    erp = make_app("auto")
    with app.app_context():
        define_role(erp.client_id, "clerk")
        grant_role(find_by_login("alice"), erp.client_id, "clerk")
        db.session.commit()
    flow = Flow(client, erp)
    result = app_result(run_flow(flow), flow)
    body = flow.token(result["code"]).get_json()
    with app.app_context():
        claims = decode_jws(app.extensions["sso_keys"], body["id_token"])
    assert claims["roles"] == ["clerk"]
    with app.app_context():
        account = service.find(alice.id, erp.client_id)
        assert account.status == "active" and account.activated_at is not None


def test_approval_shows_the_waiting_page_until_approved(
        app: Any, client: FlaskClient, alice: Any, make_app: Any) -> None:
    erp = make_app("approval")
    flow = Flow(client, erp)
    page = run_flow(flow)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Waiting for approval" in html and 'data-poll-url="/apps/waiting?flow=' in html
    waiting_url = page.request.full_path
    again = client.get(waiting_url)
    assert "Waiting for approval" in again.get_data(as_text=True)
    _admin(app, "approve", erp.client_id)
    moved = client.get(waiting_url)
    assert moved.status_code == 302
    result = app_result(client.get(moved.headers["Location"]), flow)
    assert result["state"] == flow.params["state"] and "code" in result


def test_waiting_user_may_go_back_and_the_app_learns_access_denied(
        client: FlaskClient, alice: Any, make_app: Any) -> None:
    erp = make_app("approval")
    flow = Flow(client, erp)
    page = run_flow(flow)
    html = page.get_data(as_text=True)
    flow_id = page.request.args["flow"]
    back = client.post("/apps/waiting", data={"csrf_token": csrf_of(html), "flow": flow_id})
    result = app_result(back, flow)
    assert result["error"] == "access_denied" and result["state"] == flow.params["state"]


@pytest.mark.parametrize("decision", ["deny", "none"])
def test_refused_page_then_access_denied_at_the_app(
        app: Any, client: FlaskClient, alice: Any, make_app: Any, decision: str) -> None:
    """An approval app that denied the user, and an invite app that never provisioned them."""
    erp = make_app("approval" if decision == "deny" else "invite")
    if decision == "deny":
        _admin(app, "deny", erp.client_id)
    flow = Flow(client, erp)
    page = run_flow(flow)
    assert page.status_code == 403
    html = page.get_data(as_text=True)
    assert "No access to ERP" in html
    assert ("declined" if decision == "deny" else "invited") in html
    back = client.post("/apps/refused", data={"csrf_token": csrf_of(html),
                                              "flow": page.request.args["flow"]})
    result = app_result(back, flow)
    assert result["error"] == "access_denied"
    assert "no access" in result["error_description"]


def test_invite_lets_provisioned_users_in(app: Any, client: FlaskClient, alice: Any,
                                          make_app: Any) -> None:
    erp = make_app("invite")
    _admin(app, "provision", erp.client_id)
    flow = Flow(client, erp)
    assert "code" in app_result(run_flow(flow), flow)


def test_revoke_ends_the_apps_refresh_and_access_tokens(app: Any, client: FlaskClient,
                                                        alice: Any, make_app: Any) -> None:
    erp = make_app("auto")
    flow = Flow(client, erp)
    tokens = flow.token(app_result(run_flow(flow, scope="openid offline_access"),
                                   flow)["code"]).get_json()
    _admin(app, "revoke", erp.client_id)
    refreshed = client.post("/token", headers=basic(erp), data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 400 and refreshed.get_json()["error"] == "invalid_grant"
    userinfo = client.get("/userinfo",
                          headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status_code == 401


def test_revoked_user_is_refused_again(app: Any, client: FlaskClient, alice: Any,
                                       make_app: Any) -> None:
    erp = make_app("auto")
    flow = Flow(client, erp)
    assert "code" in app_result(run_flow(flow), flow)
    _admin(app, "revoke", erp.client_id)
    assert run_flow(flow).status_code == 403


@pytest.mark.parametrize(("activation", "setup", "expected"), [
    ("auto", None, None),
    ("approval", None, "interaction_required"),
    ("approval", "pending", "interaction_required"),
    ("approval", "approve", None),
    ("approval", "deny", "access_denied"),
    ("invite", None, "access_denied"),
    ("invite", "provision", None),
    ("auto", "revoke", "access_denied"),
])
def test_prompt_none_with_each_policy(app: Any, signed_in: FlaskClient, make_app: Any,
                                      activation: str, setup: str | None,
                                      expected: str | None) -> None:
    erp = make_app(activation)
    flow = Flow(signed_in, erp)
    if setup == "pending":
        run_flow(flow)
    elif setup == "revoke":
        app_result(run_flow(flow), flow)
        _admin(app, "revoke", erp.client_id)
    elif setup:
        _admin(app, setup, erp.client_id)
    result = app_result(run_flow(flow, prompt="none"), flow)
    if expected is None:
        assert "code" in result
    else:
        assert result["error"] == expected and "code" not in result
    with app.app_context():
        account = service.find(signed_in_user_id(app), erp.client_id)
        if setup is None and activation == "approval":
            assert account is None  # a silent request files no approval request


def signed_in_user_id(app: Any) -> int:
    with app.app_context():
        return int(find_by_login("alice").id)


def test_pages_without_a_flow_say_it_expired(client: FlaskClient, alice: Any) -> None:
    for path in ("/apps/waiting", "/apps/refused", "/apps/waiting?flow=nope"):
        response = client.get(path)
        assert response.status_code == 400 and "expired" in response.get_data(as_text=True)
    page = client.get("/login")
    for path in ("/apps/waiting", "/apps/refused"):
        response = client.post(path, data={"csrf_token": csrf_of(page.get_data(as_text=True)),
                                           "flow": "nope"})
        assert response.status_code == 400


def test_pages_are_translated(client: FlaskClient, alice: Any, make_app: Any) -> None:
    erp = make_app("approval")
    flow = Flow(client, erp)
    page = run_flow(flow, ui_locales="zh-CN")
    assert "等待审批" in page.get_data(as_text=True)
