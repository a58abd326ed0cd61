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
