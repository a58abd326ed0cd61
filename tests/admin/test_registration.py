"""Dynamic client registration (RFC 7591) behind initial access tokens issued in the console,
and the configuration endpoint (RFC 7592): read and delete with the registration token."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from flask import Flask

from tests.admin.conftest import csrf

METADATA = {"client_name": "Reports", "redirect_uris": ["https://reports.example.com/cb"],
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "scope": "openid profile"}


def _issue(http: Any, **form: str) -> str:
    page = http.post("/admin/registration", data={"csrf_token": csrf(http), "hours": "2",
                                                  "label": "CI", **form})
    assert page.status_code == 200, page.get_data(as_text=True)[:400]
    found = re.search(r'id="initial-token">([^<]+)<', page.get_data(as_text=True))
    assert found
    return found.group(1)


def test_register_read_use_and_delete(app: Flask, client: Any, admins: Any,
                                      as_admin: Any) -> None:
    token = _issue(as_admin("root"), **{"for": "appadmin"})
    answer = client.post("/connect/register", json=METADATA,
                         headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 201, re.sub(r"\s+", " ", answer.get_data(as_text=True))[-1500:]
    body = answer.get_json()
    assert answer.headers["Cache-Control"] == "no-store"
    assert body["client_name"] == "Reports" and body["client_secret"].startswith("ssos_")
    client_id, secret = body["client_id"], body["client_secret"]
    # The secret works at the token endpoint.
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    assert client.post("/token", data={"grant_type": "client_credentials"},
                       headers={"Authorization": f"Basic {basic}"}).status_code == 200
    # The initial token registered once; it is used up.
    again = client.post("/connect/register", json=METADATA,
                        headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 401 and again.get_json()["error"] == "invalid_token"
    # The app admin it was issued for administers the new app.
    assert as_admin("appadmin").get(f"/admin/apps/{client_id}").status_code == 200
    # RFC 7592: read with the registration token, not with another.
    reg = {"Authorization": f"Bearer {body['registration_access_token']}"}
    read = client.get(f"/connect/register/{client_id}", headers=reg)
    assert read.status_code == 200 and "client_secret" not in read.get_json()
    assert read.get_json()["registration_client_uri"].endswith(f"/connect/register/{client_id}")
    assert client.get("/connect/register/app-a", headers=reg).status_code == 401
    assert client.delete(f"/connect/register/{client_id}", headers=reg).status_code == 204
    assert as_admin("root").get(f"/admin/apps/{client_id}").status_code == 404


BAD = [
    ({}, "invalid_client_metadata"),
    ({**METADATA, "client_name": ""}, "invalid_client_metadata"),
    ({**METADATA, "redirect_uris": "https://x.example.com/cb"}, "invalid_client_metadata"),
    ({**METADATA, "redirect_uris": ["http://evil.example.com/cb"]}, "invalid_redirect_uri"),
    ({**METADATA, "token_endpoint_auth_method": "private_key_jwt"},
     "invalid_client_metadata"),
    ({**METADATA, "id_token_signed_response_alg": "none"}, "invalid_client_metadata"),
    ({**METADATA, "grant_types": ["implicit"]}, "invalid_client_metadata"),
]


@pytest.mark.parametrize("metadata, error", BAD, ids=[e + str(i) for i, (_m, e) in
                                                      enumerate(BAD)])
def test_bad_metadata_registers_nothing(app: Flask, client: Any, admins: Any, as_admin: Any,
                                        metadata: dict[str, Any], error: str) -> None:
    from sso.extensions import db
    from sso.oidc.models import Client

    token = _issue(as_admin("root"))
    answer = client.post("/connect/register", json=metadata,
                         headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 400 and answer.get_json()["error"] == error
    with app.app_context():
        assert db.session.query(Client).count() == 2  # app-a and app-b only


def test_tokens_are_required_and_only_super_admins_issue_them(client: Any, admins: Any,
                                                               as_admin: Any) -> None:
    assert client.post("/connect/register", json=METADATA).status_code == 401
    assert client.post("/connect/register", json=METADATA,
                       headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post("/connect/register", json=METADATA,
                       headers={"Authorization": "Basic eDp5"}).status_code == 400
    for role in ("appadmin", "auditor"):
        http = as_admin(role)
        assert http.get("/admin/registration").status_code == 403
        assert http.post("/admin/registration", data={
            "csrf_token": csrf(http), "hours": "2"}).status_code == 403
    http = as_admin("root")
    bad = http.post("/admin/registration", data={"csrf_token": csrf(http), "hours": "0"})
    assert bad.status_code == 400 and "hours: 1 to 720" in bad.get_data(as_text=True)


def test_discovery_advertises_the_registration_endpoint(client: Any) -> None:
    meta = client.get("/.well-known/openid-configuration").get_json()
    assert meta["registration_endpoint"].endswith("/connect/register")


def _registered(client: Any, as_admin: Any, metadata: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    token = _issue(as_admin("root"))
    answer = client.post("/connect/register", json=metadata or METADATA,
                         headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 201
    body: dict[str, Any] = answer.get_json()
    body["headers"] = {"Authorization": f"Bearer {body['registration_access_token']}"}
    return body


def test_put_replaces_the_registration_and_resets_what_is_left_out(
        app: Flask, client: Any, admins: Any, as_admin: Any) -> None:
    from sqlalchemy import select

    from sso.audit import AuditEvent
    from sso.extensions import db

    reg = _registered(client, as_admin, {**METADATA, "logo_uri": "https://reports.example.com/l.png",
                                         "post_logout_redirect_uris": [
                                             "https://reports.example.com/bye"]})
    client_id, secret = reg["client_id"], reg["client_secret"]
    url = f"/connect/register/{client_id}"
    update = {"client_id": client_id, "client_secret": secret, "client_name": "Reports 2",
              "redirect_uris": ["https://reports.example.com/cb2"],
              "grant_types": ["authorization_code", "client_credentials"]}
    answer = client.put(url, json=update, headers=reg["headers"])
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.get_json()
    # The full registration, as GET answers it; no new secret, the same registration token.
    assert body == client.get(url, headers=reg["headers"]).get_json()
    assert body["client_name"] == "Reports 2"
    assert body["redirect_uris"] == ["https://reports.example.com/cb2"]
    assert body["grant_types"] == ["authorization_code", "client_credentials"]
    # Left out: reset to the defaults or removed.
    assert body["post_logout_redirect_uris"] == [] and "logo_uri" not in body
    assert body["scope"] == "openid profile email phone offline_access roles"
    assert "client_secret" not in body and "registration_access_token" not in body
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    assert client.post("/token", data={"grant_type": "client_credentials"},
                       headers={"Authorization": f"Basic {basic}"}).status_code == 200
    # Without the (optional) secret, too.
    del update["client_secret"]
    again = client.put(url, json={**update, "scope": "openid"}, headers=reg["headers"])
    assert again.status_code == 200 and again.get_json()["scope"] == "openid"
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(
            AuditEvent.event == "client.register_update")).all()
        assert [e.details["changed"] for e in events] == [
            ["name", "redirect_uris", "post_logout_redirect_uris", "grant_types", "scope",
             "logo_uri"], ["scope"]]


PUT_BAD = [
    ({"client_id": "other"}, 400, "invalid_client_metadata", "client_id"),
    ({"client_id": None}, 400, "invalid_client_metadata", "client_id"),
    ({"client_secret": "ssos_wrong"}, 400, "invalid_client_metadata", "client_secret"),
    ({"registration_access_token": "x"}, 400, "invalid_client_metadata",
     "registration_access_token"),
    ({"client_id_issued_at": 1}, 400, "invalid_client_metadata", "client_id_issued_at"),
    ({"redirect_uris": ["http://evil.example.com/cb"]}, 400, "invalid_redirect_uri", "http"),
    ({"redirect_uris": []}, 400, "invalid_redirect_uri", "redirect URI"),
    ({"client_name": ""}, 400, "invalid_client_metadata", "client_name"),
    ({"token_endpoint_auth_method": "none"}, 400, "invalid_client_metadata",
     "stays public"),
    ({"grant_types": ["implicit"]}, 400, "invalid_client_metadata", "implicit"),
]


@pytest.mark.parametrize("change, status, error, says", PUT_BAD,
                         ids=[f"{e}-{s}" for _c, _st, e, s in PUT_BAD])
def test_a_bad_put_changes_nothing(app: Flask, client: Any, admins: Any, as_admin: Any,
                                   change: dict[str, Any], status: int, error: str,
                                   says: str) -> None:
    reg = _registered(client, as_admin)
    url = f"/connect/register/{reg['client_id']}"
    before = client.get(url, headers=reg["headers"]).get_json()
    metadata = {**METADATA, "client_id": reg["client_id"], "client_name": "Changed",
                **change}
    answer = client.put(url, json=metadata, headers=reg["headers"])
    assert answer.status_code == status
    assert answer.get_json()["error"] == error and says in answer.get_json()[
        "error_description"]
    assert client.get(url, headers=reg["headers"]).get_json() == before


def test_put_needs_the_clients_own_token_and_an_enabled_app(
        app: Flask, client: Any, admins: Any, as_admin: Any) -> None:
    from sso.dbtypes import utcnow
    from sso.extensions import db
    from sso.oidc.models import Client

    reg = _registered(client, as_admin)
    other = _registered(client, as_admin, {**METADATA, "client_name": "Other"})
    url = f"/connect/register/{reg['client_id']}"
    metadata = {**METADATA, "client_id": reg["client_id"]}
    assert client.put(url, json=metadata).status_code == 401
    wrong = client.put(url, json=metadata, headers=other["headers"])
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid_token"
    assert client.put(url, data="not json", headers=reg["headers"]).status_code == 400
    with app.app_context():
        db.session.get(Client, reg["client_id"]).disabled_at = utcnow()
        db.session.commit()
    refused = client.put(url, json=metadata, headers=reg["headers"])
    assert refused.status_code == 403
    assert client.get(url, headers=reg["headers"]).status_code == 200
