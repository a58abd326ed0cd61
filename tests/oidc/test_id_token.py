"""ID tokens verified the way a relying party does: against the published JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import ISSUER, Flow


def _verify(client: Any, token: str, alg: str) -> dict[str, Any]:
    jwks = KeySet.import_key_set(client.get("/jwks.json").get_json())
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == alg and header["kid"]
    return jwt.decode(token, jwks, algorithms=[alg]).claims


def test_id_token_verifies_against_the_jwks_with_every_required_claim(
        flow: Flow, alice: Any, erp: Any) -> None:
    result = flow.authorize()
    body = flow.token(result["code"]).get_json()
    claims = _verify(flow.http, body["id_token"], "RS256")
    assert claims["iss"] == ISSUER
    assert claims["aud"] == erp.client_id
    assert claims["sub"] == alice.subject and claims["sub"] != "alice"
    assert claims["exp"] > time.time() >= claims["iat"] - 5
    assert claims["nonce"] == flow.params["nonce"]
    assert claims["acr"] == "urn:sso:loa:1"
    assert claims["amr"] == ["pwd"]
    assert abs(claims["auth_time"] - time.time()) < 60
    digest = hashlib.sha256(body["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    assert claims["email"] == "alice@example.com" and claims["roles"] == []


def test_access_token_is_an_rfc9068_jwt(flow: Flow, erp: Any, alice: Any) -> None:
    body = flow.token(flow.authorize()["code"]).get_json()
    header = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[0] + "=="))
    assert header["typ"] == "at+jwt"
    claims = _verify(flow.http, body["access_token"], header["alg"])
    assert {"iss", "exp", "aud", "sub", "client_id", "iat", "jti", "scope"} <= set(claims)
    assert claims["client_id"] == erp.client_id and claims["sub"] == alice.subject


def test_es256_id_tokens_per_client(make_client: Any, client: Any, alice: Any) -> None:
    ec_client = make_client("EC", id_token_alg="ES256")
    flow = Flow(client, ec_client)
    body = flow.token(flow.authorize()["code"]).get_json()
    assert _verify(client, body["id_token"], "ES256")["sub"] == alice.subject


def test_roles_claim_holds_only_this_apps_roles(flow: Flow, app: Any, erp: Any,
                                                make_client: Any) -> None:
    crm = make_client("CRM", redirect_uris=["https://crm.example.com/cb"])
    with app.app_context():
        from sso.extensions import db
        from sso.users import service as users

        alice = users.find_by_login("alice")
        users.define_role(erp.client_id, "accountant")
        users.define_role(crm.client_id, "sales")
        users.grant_role(alice, erp.client_id, "accountant")
        users.grant_role(alice, crm.client_id, "sales")
        db.session.commit()
    body = flow.token(flow.authorize()["code"]).get_json()
    assert _verify(flow.http, body["id_token"], "RS256")["roles"] == ["accountant"]
    userinfo = flow.http.get("/userinfo",
                             headers={"Authorization": f"Bearer {body['access_token']}"})
    assert userinfo.get_json()["roles"] == ["accountant"]


def test_roles_claim_holds_the_roles_a_group_and_its_parent_give(
        flow: Flow, app: Any, erp: Any) -> None:
    """A grant on a group (or on the group above it) reaches the ID token, the access token
    and userinfo of tokens issued afterwards; taking it back leaves the next ones without."""
    from sso.admin import groups
    from sso.extensions import db
    from sso.users import service as users

    with app.app_context():
        users.define_role(erp.client_id, "accountant")
        users.define_role(erp.client_id, "approver")
        users.define_role(erp.client_id, "auditor")
        users.grant_role(users.find_by_login("alice"), erp.client_id, "approver")
        db.session.commit()
        groups.create(None, name="company")
        groups.create(None, name="finance", parent="company")
        groups.change_member(None, "finance", "alice", True)
        groups.change_role(None, "finance", erp.client_id, "accountant", True)
        groups.change_role(None, "company", erp.client_id, "auditor", True)
        groups.change_role(None, "company", erp.client_id, "approver", True)  # held directly
    body = flow.token(flow.authorize()["code"]).get_json()
    expected = ["accountant", "approver", "auditor"]
    assert _verify(flow.http, body["id_token"], "RS256")["roles"] == expected
    header = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[0] + "=="))
    assert _verify(flow.http, body["access_token"], header["alg"])["roles"] == expected
    userinfo = flow.http.get("/userinfo",
                             headers={"Authorization": f"Bearer {body['access_token']}"})
    assert userinfo.get_json()["roles"] == expected
    with app.app_context():
        groups.change_member(None, "finance", "alice", False)
    body = flow.token(flow.authorize()["code"]).get_json()
    assert _verify(flow.http, body["id_token"], "RS256")["roles"] == ["approver"]


def test_claims_follow_the_scopes(flow: Flow) -> None:
    body = flow.token(flow.authorize(scope="openid")["code"]).get_json()
    claims = _verify(flow.http, body["id_token"], "RS256")
    assert "email" not in claims and "preferred_username" not in claims and "roles" not in claims


def test_a_replayed_nonce_is_refused(flow: Flow) -> None:
    flow.authorize(nonce="same-nonce")
    flow.params = flow.authorize_params(nonce="same-nonce")
    response = flow.http.get("/authorize", query_string=flow.params)
    assert "error=invalid_request" in response.headers["Location"]


@pytest.mark.parametrize("prompt", [None, "none"])
def test_a_replayed_nonce_is_refused_before_any_page(flow: Flow, app: Any,
                                                     prompt: str | None) -> None:
    """Refused before the sign-in page (and before ``login_required`` for ``prompt=none``),
    as Authlib's check refuses it: on PostgreSQL the check made by the statement that writes
    a code comes first when the user is not signed in."""
    flow.authorize(nonce="seen-nonce")
    stranger = Flow(app.test_client(), flow.app_client)  # no SSO session
    params = stranger.authorize_params(nonce="seen-nonce", prompt=prompt)
    location = stranger.http.get("/authorize", query_string=params).headers["Location"]
    assert location.startswith(params["redirect_uri"]), location
    assert "error=invalid_request" in location, location


def test_a_nonce_is_a_replay_only_for_the_same_client(flow: Flow, make_client: Any) -> None:
    flow.authorize(nonce="shared-nonce")
    other = Flow(flow.http, make_client("CRM", ["https://crm.example.com/cb"]))
    assert "code" in other.authorize(nonce="shared-nonce")
    assert "code" in other.authorize(nonce=None)
    assert "code" in other.authorize(nonce=None)  # no nonce: never a replay


@pytest.mark.parametrize("scope", ["openid", "openid profile"])
def test_no_nonce_no_nonce_claim(flow: Flow, scope: str) -> None:
    body = flow.token(flow.authorize(nonce=None, scope=scope)["code"]).get_json()
    assert "nonce" not in _verify(flow.http, body["id_token"], "RS256")


def test_without_openid_there_is_no_id_token(flow: Flow) -> None:
    body = flow.token(flow.authorize(scope="profile")["code"]).get_json()
    assert "id_token" not in body and body["scope"] == "profile"
