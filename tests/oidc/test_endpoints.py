"""UserInfo, introspection, revocation, discovery and JWKS."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ISSUER, Flow, basic


@pytest.fixture
def tokens(flow: Flow) -> dict[str, Any]:
    return flow.token(flow.authorize()["code"]).get_json()  # type: ignore[no-any-return]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# UserInfo.


def test_userinfo_by_get_and_post(flow: Flow, tokens: dict[str, Any], alice: Any) -> None:
    by_get = flow.http.get("/userinfo", headers=_bearer(tokens["access_token"]))
    by_post = flow.http.post("/userinfo", headers=_bearer(tokens["access_token"]))
    by_form = flow.http.post("/userinfo", data={"access_token": tokens["access_token"]})
    for response in (by_get, by_post, by_form):
        assert response.status_code == 200
        assert response.get_json()["sub"] == alice.subject


def test_userinfo_without_a_token_asks_for_one(client: Any) -> None:
    response = client.get("/userinfo")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == f'Bearer realm="{ISSUER}"'


@pytest.mark.parametrize("header", ["Bearer nonsense", "Bearer a.b.c", "Bearer " + "x" * 20000])
def test_userinfo_with_an_invalid_token(client: Any, header: str) -> None:
    response = client.get("/userinfo", headers={"Authorization": header})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(("kwargs", "status"), [
    ({"headers": {"Authorization": "Basic abc"}}, 400),
    ({"query_string": {"access_token": "x"}}, 400),
])
def test_userinfo_refuses_other_ways_of_sending_tokens(client: Any, kwargs: dict[str, Any],
                                                       status: int) -> None:
    response = client.get("/userinfo", **kwargs)
    assert response.status_code == status
    assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]


def test_userinfo_needs_the_openid_scope(flow: Flow) -> None:
    body = flow.token(flow.authorize(scope="profile")["code"]).get_json()
    response = flow.http.get("/userinfo", headers=_bearer(body["access_token"]))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_client_credentials_token_is_not_for_userinfo(make_client: Any, client: Any) -> None:
    service = make_client("Svc", grant_types=["client_credentials"], scope="api",
                          redirect_uris=[])
    token = client.post("/token", data={"grant_type": "client_credentials"},
                        headers=basic(service)).get_json()["access_token"]
    assert client.get("/userinfo", headers=_bearer(token)).status_code == 403


def test_userinfo_refuses_tokens_of_a_disabled_user(flow: Flow, tokens: dict[str, Any],
                                                    app: Any) -> None:
    with app.app_context():
        from sso.extensions import db
        from sso.users.service import find_by_login

        find_by_login("alice").status = "disabled"
        db.session.commit()
    assert flow.http.get("/userinfo", headers=_bearer(tokens["access_token"])).status_code == 401


# Introspection.


def _introspect(flow: Flow, token: str, client: Any = None, **extra: str) -> Any:
    return flow.http.post("/introspect", data={"token": token, **extra},
                          headers=basic(client or flow.app_client))


def test_introspection_of_an_active_access_token(flow: Flow, tokens: dict[str, Any],
                                                 alice: Any, erp: Any) -> None:
    body = _introspect(flow, tokens["access_token"]).get_json()
    assert body["active"] is True
    assert body["sub"] == alice.subject and body["client_id"] == erp.client_id
    assert body["username"] == "alice" and body["token_type"] == "Bearer"
    assert "openid" in body["scope"].split()


def test_introspection_of_a_refresh_token(flow: Flow, tokens: dict[str, Any]) -> None:
    body = _introspect(flow, tokens["refresh_token"],
                       token_type_hint="refresh_token").get_json()
    assert body["active"] is True and body["token_type"] == "refresh_token"


@pytest.mark.parametrize("token", ["garbage", "ssor_garbage", "a.b.c"])
def test_introspection_of_unknown_tokens_is_inactive(flow: Flow, token: str) -> None:
    assert _introspect(flow, token).get_json() == {"active": False}


def test_a_client_cannot_introspect_another_clients_token(flow: Flow, tokens: dict[str, Any],
                                                          make_client: Any) -> None:
    crm = make_client("CRM", redirect_uris=["https://crm.example.com/cb"])
    assert _introspect(flow, tokens["access_token"], crm).get_json() == {"active": False}
    assert _introspect(flow, tokens["refresh_token"], crm).get_json() == {"active": False}


def test_public_clients_cannot_introspect(flow: Flow, tokens: dict[str, Any],
                                          make_client: Any) -> None:
    spa = make_client("SPA", public=True, redirect_uris=["http://127.0.0.1:9/cb"])
    response = flow.http.post("/introspect", data={"token": tokens["access_token"],
                                                   "client_id": spa.client_id})
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_introspection_without_token_or_credentials(flow: Flow) -> None:
    assert flow.http.post("/introspect", data={},
                          headers=basic(flow.app_client)).get_json()["error"] == "invalid_request"
    assert flow.http.post("/introspect", data={"token": "x"}).status_code == 401


# Revocation.


def _revoke(flow: Flow, token: str, client: Any = None, **extra: str) -> Any:
    return flow.http.post("/revoke", data={"token": token, **extra},
                          headers=basic(client or flow.app_client))


def test_revoking_an_access_token(flow: Flow, tokens: dict[str, Any]) -> None:
    assert _revoke(flow, tokens["access_token"], token_type_hint="access_token").status_code == 200
    assert flow.http.get("/userinfo", headers=_bearer(tokens["access_token"])).status_code == 401
    assert _introspect(flow, tokens["access_token"]).get_json() == {"active": False}


def test_revoking_a_refresh_token_ends_the_grant(flow: Flow, tokens: dict[str, Any]) -> None:
    assert _revoke(flow, tokens["refresh_token"]).status_code == 200
    refreshed = flow.http.post("/token", data={"grant_type": "refresh_token",
                                               "refresh_token": tokens["refresh_token"]},
                               headers=basic(flow.app_client))
    assert refreshed.get_json()["error"] == "invalid_grant"
    assert flow.http.get("/userinfo", headers=_bearer(tokens["access_token"])).status_code == 401


@pytest.mark.parametrize("token", ["unknown", "ssor_unknown", "a.b.c"])
def test_revoking_unknown_tokens_succeeds_quietly(flow: Flow, token: str) -> None:
    assert _revoke(flow, token).status_code == 200


def test_a_client_cannot_revoke_another_clients_token(flow: Flow, tokens: dict[str, Any],
                                                      make_client: Any) -> None:
    crm = make_client("CRM", redirect_uris=["https://crm.example.com/cb"])
    assert _revoke(flow, tokens["refresh_token"], crm).get_json()["error"] == "invalid_grant"
    assert _revoke(flow, tokens["access_token"], crm).get_json()["error"] == "invalid_grant"
    assert flow.http.get("/userinfo", headers=_bearer(tokens["access_token"])).status_code == 200


def test_revocation_needs_client_authentication_and_a_token(flow: Flow) -> None:
    assert flow.http.post("/revoke", data={"token": "x"}).status_code == 401
    response = flow.http.post("/revoke", data={}, headers=basic(flow.app_client))
    assert response.get_json()["error"] == "invalid_request"


def test_public_client_revokes_its_own_token(make_client: Any, client: Any,
                                             alice: Any) -> None:
    spa = make_client("SPA", public=True, redirect_uris=["http://127.0.0.1:9/cb"])
    flow = Flow(client, spa)
    code = flow.authorize()["code"]
    body = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                       "client_id": spa.client_id, "redirect_uri":
                                       spa.redirect_uri, "code_verifier": flow.verifier}
                       ).get_json()
    response = client.post("/revoke", data={"token": body["refresh_token"],
                                            "client_id": spa.client_id})
    assert response.status_code == 200


# Discovery and JWKS.


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration",
                                  "/.well-known/oauth-authorization-server"])
def test_discovery_document(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    meta = response.get_json()
    assert meta["issuer"] == ISSUER
    for endpoint in ("authorization", "token", "userinfo", "end_session", "introspection",
                     "revocation"):
        assert meta[f"{endpoint}_endpoint"].startswith(ISSUER + "/")
    assert meta["jwks_uri"] == ISSUER + "/jwks.json"
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert "RS256" in meta["id_token_signing_alg_values_supported"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert {"openid", "profile", "email", "phone", "offline_access", "roles"} <= set(
        meta["scopes_supported"])
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_jwks_publishes_active_and_next_keys_with_thumbprint_kids(client: Any, app: Any
                                                                  ) -> None:
    from joserfc.jwk import JWKRegistry

    response = client.get("/jwks.json")
    keys = response.get_json()["keys"]
    assert {k["alg"] for k in keys} == {"RS256", "ES256"}
    assert len(keys) >= 4  # active and next per algorithm, plus any retired ones
    for key in keys:
        assert "d" not in key and key["use"] == "sig"
        imported = JWKRegistry.import_key({k: v for k, v in key.items() if k != "kid"})
        assert imported.thumbprint() == key["kid"]
    again = client.get("/jwks.json", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


@pytest.mark.parametrize("path", ["/token", "/userinfo", "/revoke", "/jwks.json"])
def test_browser_apps_may_call_the_api_endpoints(client: Any, path: str) -> None:
    preflight = client.options(path, headers={"Origin": "https://spa.example.com",
                                              "Access-Control-Request-Method": "POST"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]


def test_introspection_is_not_open_to_browsers(client: Any) -> None:
    response = client.options("/introspect", headers={"Origin": "https://spa.example.com"})
    assert "Access-Control-Allow-Origin" not in response.headers
