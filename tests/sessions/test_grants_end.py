"""No grant outlives the events that should end it: a stolen ``offline_access`` refresh token
stops after a password change, a reset, a second-factor reset and an admin freeze; offline
grants end at an absolute lifetime however often they are refreshed; the account's apps page
revokes a grant; another user's session or grant is 404; forms without CSRF are refused."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from sso.cli import cli
from tests.conftest import PASSWORD, Flow, basic, csrf_of

NEW_PASSWORD = "Another-horse-7-battery"


def _steal(flow: Flow) -> str:
    """The attacker's copy of alice's offline refresh token (from another sign-in)."""
    answer = flow.authorize(scope="openid offline_access")
    tokens = flow.token(answer["code"]).get_json()
    return str(tokens["refresh_token"])


def _refresh(http: FlaskClient, erp: Any, token: str) -> Any:
    return http.post("/token", data={"grant_type": "refresh_token", "refresh_token": token},
                     headers=basic(erp))


def _password_change(app: Any, http: FlaskClient, erp: Any) -> None:
    page = http.get("/password/change")
    response = http.post("/password/change", data={
        "csrf_token": csrf_of(page.get_data(as_text=True)), "current": PASSWORD,
        "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]


def _reset(app: Any, http: FlaskClient, erp: Any) -> None:
    from sso.extensions import db
    from sso.outbox import OutboxMessage

    other = app.test_client()
    page = other.get("/password/reset")
    other.post("/password/reset", data={"csrf_token": csrf_of(page.get_data(as_text=True)),
                                        "login": "alice"})
    with app.app_context():
        mail = db.session.scalars(db.select(OutboxMessage).where(
            OutboxMessage.purpose == "reset")).one()
        link = re.search(r"/password/reset/\S+", mail.body_text).group(0)
    page = other.get(link)
    response = other.post(link, data={"csrf_token": csrf_of(page.get_data(as_text=True)),
                                      "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 200


def _mfa_reset(app: Any, http: FlaskClient, erp: Any) -> None:
    result = app.test_cli_runner().invoke(cli, ["users", "reset-mfa", "alice"])
    assert result.exit_code == 0, result.output


def _freeze(app: Any, http: FlaskClient, erp: Any) -> None:
    result = app.test_cli_runner().invoke(cli, ["users", "freeze", "alice"])
    assert result.exit_code == 0, result.output
    assert "frozen" in result.output


@pytest.mark.parametrize("event", [_password_change, _reset, _mfa_reset, _freeze],
                         ids=["password-change", "reset", "mfa-reset", "freeze"])
def test_a_stolen_refresh_token_stops_after(app: Any, client: FlaskClient, erp: Any,
                                            alice: Any, event: Any) -> None:
    attacker = app.test_client()
    stolen = _steal(Flow(attacker, erp))
    second = _refresh(attacker, erp, stolen)
    assert second.status_code == 200  # it works until the event
    stolen = second.get_json()["refresh_token"]

    Flow(client, erp).authorize()  # alice's own browser
    event(app, client, erp)

    response = _refresh(attacker, erp, stolen)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"


def test_a_voluntary_change_may_keep_offline_grants(app: Any, client: FlaskClient, erp: Any,
                                                    alice: Any) -> None:
    stolen = _steal(Flow(app.test_client(), erp))
    Flow(client, erp).authorize()
    app.config["KEEP_OFFLINE_ON_PASSWORD_CHANGE"] = True
    try:
        _password_change(app, client, erp)
    finally:
        app.config["KEEP_OFFLINE_ON_PASSWORD_CHANGE"] = False
    assert _refresh(app.test_client(), erp, stolen).status_code == 200


def test_offline_grants_end_at_their_absolute_lifetime(app: Any, ctx: None, erp: Any,
                                                       alice: Any) -> None:
    from sso.dbtypes import utcnow
    from sso.oidc.clients import get
    from sso.oidc.tokens import GrantFacts
    from sso.users.service import find_by_login

    service = app.extensions["sso_tokens"]
    now = utcnow()
    facts = GrantFacts(grant_id="g", session_id=None, auth_time=now - timedelta(days=89),
                       acr=None)
    _token, row = service.new_refresh_token(get(erp.client_id), find_by_login("alice"),
                                            "openid offline_access", facts, "j", now, now, None)
    # The sliding lifetime (30 days) is cut to the absolute end, 90 days after sign-in.
    assert row["expires_at"] == facts.auth_time + timedelta(days=90)
    fresh = GrantFacts(grant_id="h", session_id=None, auth_time=now, acr=None)
    _token, row = service.new_refresh_token(get(erp.client_id), find_by_login("alice"),
                                            "openid offline_access", fresh, "k", now, now, None)
    assert row["expires_at"] == now + timedelta(seconds=app.config["OFFLINE_REFRESH_TOKEN_TTL"])


def test_the_apps_page_lists_and_revokes_an_offline_grant(app: Any, client: FlaskClient,
                                                          erp: Any, alice: Any) -> None:
    flow = Flow(client, erp)
    answer = flow.authorize(scope="openid offline_access")
    stolen = flow.token(answer["code"]).get_json()["refresh_token"]
    page = client.get("/account/apps").get_data(as_text=True)
    assert 'id="app-' + erp.client_id + '"' in page
    grant = re.search(r'name="grant" value="([^"]+)"', page).group(1)
    # Without the CSRF token: refused. Another user's (or an unknown) grant: 404.
    assert client.post("/account/apps/revoke", data={"grant": grant}).status_code == 400
    assert client.post("/account/apps/revoke", data={
        "csrf_token": csrf_of(page), "grant": "not-theirs"}).status_code == 404
    response = client.post("/account/apps/revoke", data={"csrf_token": csrf_of(page),
                                                         "grant": grant})
    assert response.status_code == 302
    assert _refresh(app.test_client(), erp, stolen).status_code == 400


def test_someone_elses_session_is_404(app: Any, client: FlaskClient, erp: Any, alice: Any,
                                      make_user: Any) -> None:
    make_user("bob")
    bob = app.test_client()
    Flow(bob, erp).authorize(username="bob")
    Flow(client, erp).authorize()
    from sso.extensions import db
    from sso.sessions.models import SSOSession
    from sso.users.service import find_by_login

    with app.app_context():
        bobs = db.session.scalars(db.select(SSOSession).where(
            SSOSession.user_id == find_by_login("bob").id)).one().id
    page = client.get("/account/sessions").get_data(as_text=True)
    assert bobs not in page
    response = client.post("/account/sessions/end", data={"csrf_token": csrf_of(page),
                                                          "session_id": bobs})
    assert response.status_code == 404
    assert client.post("/account/sessions/end-others", data={}).status_code == 400
    with app.app_context():
        assert db.session.get(SSOSession, bobs).ended_at is None


def test_the_account_pages_need_a_session(client: FlaskClient) -> None:
    for path in ("/account/sessions", "/account/apps", "/account/activity"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_recent_activity_shows_the_users_own_rows(app: Any, client: FlaskClient, erp: Any,
                                                  alice: Any, make_user: Any) -> None:
    make_user("bob")
    Flow(app.test_client(), erp).authorize(username="bob")
    Flow(client, erp).authorize()
    page = client.get("/account/activity").get_data(as_text=True)
    assert "Signed in" in page
    from sso.audit import AuditEvent
    from sso.extensions import db
    from sso.users.service import find_by_login

    with app.app_context():
        bob_id = find_by_login("bob").id
        alice_id = find_by_login("alice").id
        mine = db.session.scalars(db.select(AuditEvent).where(
            AuditEvent.user_id == alice_id)).all()
        theirs = db.session.scalars(db.select(AuditEvent).where(
            AuditEvent.user_id == bob_id)).all()
    assert page.count("<tr") - 1 == len(mine) and theirs
