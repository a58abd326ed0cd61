"""Authlib's OAuth 2.0 client as a relying party, over real HTTP against the live provider:
the code flow with PKCE (the sign-in form posted like a browser would), the ID token checked
against the JWKS, the access token checked as RFC 9068 says, userinfo, refresh rotation,
revocation and RP-initiated logout."""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

from sso.demo.seed import DEMO_PASSWORD
from tests.conftest import LiveProvider
from tests.interop.conftest import SeededApp, browse_until

SCOPE = "openid profile email roles offline_access"


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def _sign_in(live: LiveProvider, app: SeededApp, metadata: dict[str, Any]) -> dict[str, Any]:
    rp = OAuth2Session(app.client_id, app.secret, scope=SCOPE, redirect_uri=app.redirect_uri,
                       code_challenge_method="S256",
                       token_endpoint_auth_method="client_secret_basic")
    verifier, nonce = generate_token(48), generate_token(20)
    url, state = rp.create_authorization_url(metadata["authorization_endpoint"],
                                             code_verifier=verifier, nonce=nonce)
    assert "code_challenge_method=S256" in url
    browser = requests.Session()
    callback = browse_until(browser, url, app.redirect_uri, "alice", DEMO_PASSWORD)
    token = rp.fetch_token(metadata["token_endpoint"], authorization_response=callback,
                           code_verifier=verifier)
    return {"rp": rp, "browser": browser, "callback": callback, "token": token, "nonce": nonce,
            "state": state}


def test_authlib_code_flow_tokens_userinfo_refresh_revoke_logout(
        live_provider: LiveProvider, erp_app: SeededApp, metadata: dict[str, Any]) -> None:
    issuer = live_provider.url
    jwks = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
    flow = _sign_in(live_provider, erp_app, metadata)
    rp, token = flow["rp"], flow["token"]

    # RFC 9207: the authorization response names the issuer.
    assert _query(flow["callback"])["iss"] == issuer

    # The ID token: RS256, a kid the JWKS has, and the claims OIDC Core §3.1.3.7 requires.
    id_token = jwt.decode(token["id_token"], jwks, algorithms=["RS256"])
    assert id_token.header["alg"] == "RS256" and id_token.header["kid"]
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": erp_app.client_id},
        nonce={"essential": True, "value": flow["nonce"]},
        sub={"essential": True}, exp={"essential": True}, iat={"essential": True},
        auth_time={"essential": True}, sid={"essential": True},
        at_hash={"essential": True, "value": _at_hash(token["access_token"])},
    ).validate(id_token.claims)
    assert id_token.claims["amr"] == ["pwd"]
    assert sorted(id_token.claims["roles"]) == ["accountant", "approver"]

    # The access token is a JWT a resource server can check on its own (RFC 9068 §4).
    access = jwt.decode(token["access_token"], jwks, algorithms=["ES256", "RS256"])
    assert access.header["typ"].lower() in ("at+jwt", "application/at+jwt")
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": erp_app.client_id},
        client_id={"essential": True, "value": erp_app.client_id},
        sub={"essential": True, "value": id_token.claims["sub"]},
        exp={"essential": True}, iat={"essential": True}, jti={"essential": True},
    ).validate(access.claims)
    assert set(access.claims["scope"].split()) == set(SCOPE.split())

    # userinfo, with the bearer token Authlib attaches.
    userinfo = rp.get(metadata["userinfo_endpoint"]).json()
    assert userinfo["sub"] == id_token.claims["sub"]
    assert userinfo["email"] == "alice@example.com"
    assert sorted(userinfo["roles"]) == ["accountant", "approver"]

    # Refresh rotates the refresh token; the old one, reused, kills the family.
    refreshed = rp.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert refreshed["access_token"] != token["access_token"]
    auth = (erp_app.client_id, erp_app.secret)

    def introspect(value: str) -> bool:
        answer = requests.post(metadata["introspection_endpoint"], data={"token": value},
                               auth=auth, timeout=10)
        return bool(answer.json()["active"])

    # Revocation (RFC 7009) of the access token, seen by introspection (RFC 7662) and userinfo.
    assert introspect(refreshed["access_token"])
    rp.revoke_token(metadata["revocation_endpoint"], token=refreshed["access_token"],
                    token_type_hint="access_token").raise_for_status()
    assert not introspect(refreshed["access_token"])
    denied = requests.get(metadata["userinfo_endpoint"], timeout=10,
                          headers={"Authorization": f"Bearer {refreshed['access_token']}"})
    assert denied.status_code == 401 and "invalid_token" in denied.headers["WWW-Authenticate"]

    # Presented again within the grace (a client's retry): the same successor, not a reuse.
    retried = requests.post(metadata["token_endpoint"], auth=auth, timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
    assert retried.status_code == 200
    assert retried.json()["refresh_token"] == refreshed["refresh_token"]
    # Outside the grace it is a reuse: refused, and the whole grant ends.
    grace = live_provider.app.config["REFRESH_REUSE_GRACE"]
    live_provider.app.config["REFRESH_REUSE_GRACE"] = 0
    try:
        reused = requests.post(metadata["token_endpoint"], auth=auth, timeout=10, data={
            "grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
    finally:
        live_provider.app.config["REFRESH_REUSE_GRACE"] = grace
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    after_reuse = requests.post(metadata["token_endpoint"], auth=auth, timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]})
    assert after_reuse.json()["error"] == "invalid_grant"

    # RP-initiated logout in the same browser: straight back to the app with its state.
    browser = flow["browser"]
    bye = browser.get(metadata["end_session_endpoint"], allow_redirects=False, params={
        "id_token_hint": token["id_token"],
        "post_logout_redirect_uri": erp_app.post_logout_redirect_uri, "state": "bye-1"})
    assert bye.status_code == 302
    assert bye.headers["Location"] == f"{erp_app.post_logout_redirect_uri}?state=bye-1"
    # The SSO session is over: a silent authorization request now needs a login.
    silent, _state = rp.create_authorization_url(metadata["authorization_endpoint"],
                                                 code_verifier=generate_token(48),
                                                 nonce=generate_token(20), prompt="none")
    back = browser.get(silent, allow_redirects=False)
    assert _query(back.headers["Location"])["error"] == "login_required"


def test_authlib_revoking_the_refresh_token_ends_the_grant(
        live_provider: LiveProvider, erp_app: SeededApp, metadata: dict[str, Any]) -> None:
    flow = _sign_in(live_provider, erp_app, metadata)
    rp, token = flow["rp"], flow["token"]
    rp.revoke_token(metadata["revocation_endpoint"], token=token["refresh_token"],
                    token_type_hint="refresh_token").raise_for_status()
    answer = requests.post(metadata["token_endpoint"], timeout=10,
                           auth=(erp_app.client_id, erp_app.secret),
                           data={"grant_type": "refresh_token",
                                 "refresh_token": token["refresh_token"]})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
