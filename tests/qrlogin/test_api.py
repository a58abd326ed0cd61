"""The native-app API: a bearer token of a public mobile client with scope qr.approve."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import Flow
from tests.qrlogin.conftest import Desktop


@pytest.fixture
def mobile(make_client: Any) -> Any:
    return make_client("Company app", ["com.example.app:/callback"], public=True,
                       scope="openid profile qr.approve", first_party=True)


def _token(app: Any, registered: Any, scope: str) -> str:
    http = app.test_client()
    flow = Flow(http, registered)
    back = flow.authorize(scope=scope)
    response = flow.token(back["code"], client_id=registered.client_id)
    assert response.status_code == 200, response.get_data(as_text=True)
    return str(response.get_json()["access_token"])


@pytest.fixture
def token(app: Any, mobile: Any, alice: Any) -> str:
    return _token(app, mobile, "openid qr.approve")


def _call(desktop: Desktop, qr_id: str, action: str, token: str | None, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return desktop.http.post(f"/api/qr/{qr_id}/{action}", headers=headers, **kwargs)


def test_the_app_scans_approves_and_the_desktop_signs_in(desktop: Desktop, token: str) -> None:
    code = desktop.start()
    scanned = _call(desktop, code["id"], "scan", token)
    assert scanned.status_code == 200, scanned.get_data(as_text=True)
    body = scanned.get_json()
    assert body["state"] == "scanned" and body["app"]["name"] == "ERP"
    assert body["desktop"]["browser"] == "Chrome" and body["desktop"]["os"] == "Windows"
    assert body["number_choices"] is None and 0 < body["expires_in"] <= 120
    approved = _call(desktop, code["id"], "approve", token)
    assert approved.status_code == 200 and approved.get_json()["state"] == "approved"
    assert desktop.follow_to_app(desktop.complete())["code"]


def test_the_app_reports_a_request_that_is_not_the_users(desktop: Desktop, token: str,
                                                          app: Any, alice: Any) -> None:
    code = desktop.start()
    _call(desktop, code["id"], "scan", token)
    reported = _call(desktop, code["id"], "report", token)
    assert reported.status_code == 200 and reported.get_json()["state"] == "denied"
    assert _call(desktop, code["id"], "report", token).status_code == 409  # once
    second = desktop.new_code()
    blocked = _call(desktop, second["id"], "scan", token)
    assert blocked.status_code == 403 and blocked.get_json()["error"] == "blocked"
    with app.app_context():
        store = app.extensions["sso_qr_store"]
        store.redis.client.delete(store.block_key(alice.id))  # the pause runs out
    assert _call(desktop, second["id"], "scan", token).status_code == 200


def test_the_app_can_deny(desktop: Desktop, token: str) -> None:
    code = desktop.start()
    assert _call(desktop, code["id"], "deny", token).status_code == 409  # not scanned yet
    _call(desktop, code["id"], "scan", token)
    assert _call(desktop, code["id"], "deny", token).get_json()["state"] == "denied"
    assert _call(desktop, code["id"], "approve", token).status_code == 409
    assert desktop.complete().status_code == 409


def test_number_matching_through_the_api(desktop: Desktop, token: str, app: Any,
                                         erp: Any) -> None:
    from sso.extensions import db
    from sso.qrlogin.service import set_number_matching

    with app.app_context():
        set_number_matching(erp.client_id, True)
        db.session.commit()
    code = desktop.start()
    choices = _call(desktop, code["id"], "scan", token).get_json()["number_choices"]
    assert code["number"] in choices
    assert _call(desktop, code["id"], "approve", token, data="[1]",
                 content_type="application/json").status_code == 400
    assert _call(desktop, code["id"], "approve", token,
                 json={"number": code["number"]}).status_code == 200


def _expired_token(app: Any, mobile: Any, alice: Any) -> str:
    from sso.dbtypes import utcnow
    from sso.extensions import db
    from sso.oidc.models import Client
    from sso.users.models import User

    with app.app_context():
        service = app.extensions["sso_tokens"]
        token, _expires = service.access_token(
            db.session.get(Client, mobile.client_id), db.session.get(User, alice.id),
            "openid qr.approve", None, "expired-jti", utcnow() - timedelta(hours=2))
        return str(token)


@pytest.mark.parametrize("case, status, error", [
    ("missing", 401, None),
    ("not bearer", 400, "invalid_request"),
    ("garbage", 401, "invalid_token"),
    ("expired", 401, "invalid_token"),
    ("revoked", 401, "invalid_token"),
    ("wrong scope", 403, "insufficient_scope"),
    ("confidential client", 403, "insufficient_scope"),
])
def test_bad_tokens_change_nothing(desktop: Desktop, app: Any, mobile: Any, alice: Any,
                                   erp: Any, case: str, status: int, error: str | None) -> None:
    code = desktop.start()
    headers: dict[str, str] = {}
    if case == "not bearer":
        headers = {"Authorization": "Basic YWxpY2U6cHc="}
    elif case == "garbage":
        headers = {"Authorization": "Bearer not.a.token"}
    elif case == "expired":
        headers = {"Authorization": f"Bearer {_expired_token(app, mobile, alice)}"}
    elif case == "revoked":
        token = _token(app, mobile, "openid qr.approve")
        app.test_client().post("/revoke", data={"token": token, "client_id": mobile.client_id})
        headers = {"Authorization": f"Bearer {token}"}
    elif case == "wrong scope":
        headers = {"Authorization": f"Bearer {_token(app, mobile, 'openid profile')}"}
    elif case == "confidential client":
        http = app.test_client()
        flow = Flow(http, erp)
        headers = {"Authorization": "Bearer " + flow.token(flow.authorize()["code"]).get_json()[
            "access_token"]}
    response = desktop.http.post(f"/api/qr/{code['id']}/scan", headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)
    assert status == 400 or response.headers["WWW-Authenticate"].startswith("Bearer")
    if error:
        assert response.get_json()["error"] == error
    with app.app_context():
        assert app.extensions["sso_qr_store"].get(code["id"]).state == "pending"


def test_a_token_whose_sign_in_ended_is_refused(desktop: Desktop, app: Any, token: str) -> None:
    from sso.extensions import db
    from sso.sessions import service as sessions
    from sso.sessions.models import SSOSession

    with app.app_context():
        for row in db.session.scalars(db.select(SSOSession)).all():
            sessions.end_session(row, reason="logout")
        db.session.commit()
    code = desktop.start()
    response = _call(desktop, code["id"], "scan", token)
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"


def test_too_old_and_unknown_codes(desktop: Desktop, app: Any, token: str) -> None:
    from sso.extensions import db
    from sso.sessions.models import SSOSession

    assert _call(desktop, "A" * 22, "scan", token).status_code == 404
    assert _call(desktop, "bad", "approve", token).status_code == 404
    code = desktop.start()
    with app.app_context():
        for row in db.session.scalars(db.select(SSOSession)).all():
            row.auth_time = row.auth_time - timedelta(days=1)
        db.session.commit()
    response = _call(desktop, code["id"], "scan", token)
    assert response.status_code == 403 and response.get_json()["error"] == "login_required"


def test_the_openapi_document(client: Any) -> None:
    document = client.get("/api/qr/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {"/api/qr/{id}/scan", "/api/qr/{id}/approve",
                                      "/api/qr/{id}/deny", "/api/qr/{id}/report",
                                      "/api/ciba/requests", "/api/ciba/requests/{id}/{action}"}
    assert document["servers"] == [{"url": "http://sso.test"}]


def test_discovery_lists_the_scope(client: Any) -> None:
    assert "qr.approve" in client.get("/.well-known/openid-configuration").get_json()[
        "scopes_supported"]


def test_a_too_old_phone_cannot_approve_but_can_still_cancel(desktop: Desktop, app: Any,
                                                              token: str) -> None:
    from sso.extensions import db
    from sso.sessions.models import SSOSession

    code = desktop.start()
    assert _call(desktop, code["id"], "scan", token).status_code == 200
    with app.app_context():
        for row in db.session.scalars(db.select(SSOSession)).all():
            row.auth_time = row.auth_time - timedelta(days=1)
        db.session.commit()
    refused = _call(desktop, code["id"], "approve", token)
    assert refused.status_code == 403 and refused.get_json()["error"] == "login_required"
    assert _call(desktop, code["id"], "deny", token).get_json()["state"] == "denied"
