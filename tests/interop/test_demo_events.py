"""The demo ERP as a Security Event Token recipient (RFC 8935): the provider's SET about a
first sign-in is verified against the JWKS and creates the ERP's local record before the user
lands; forged, misaddressed and malformed SETs get RFC 8935 errors and change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from sso.demo.app import EVENTS_PATH, create_demo_app
from sso.demo.seed import DEMO_APPS, seed
from tests.conftest import LiveProvider, free_port, serve_in_thread
from tests.interop.conftest import SeededApp, browse_until


@pytest.fixture
def erp_with_events(live_provider: LiveProvider) -> Iterator[tuple[SeededApp, Any]]:
    """The demo ERP on a free port, registered with its events endpoint (no MFA policy, so
    the HTTP "browser" can sign in with a password)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    demo_app = {**DEMO_APPS[0], "port": port,
                "policy": {"events_endpoint": url + EVENTS_PATH}}
    with live_provider.app.app_context():
        secrets = seed(live_provider.app.instance_path, apps=[demo_app])
    rp = create_demo_app("ERP", port, live_provider.url, "erp", secrets["erp"],
                         receives_events=True)
    server = serve_in_thread(rp, port)
    yield SeededApp("erp", secrets["erp"], url), rp
    server.shutdown()


def _sign_jwt(live: LiveProvider, typ: str) -> str:
    """A token signed by the provider's key that is no SET (e.g. an ID token, typ JWT)."""
    from sso.oidc.keys import encode_jws

    with live.app.app_context():
        key = live.app.extensions["sso_keys"].active("RS256")
        return encode_jws(key, {"iss": live.url, "aud": "erp", "jti": "j", "sub": "s",
                                "events": {}}, typ=typ)


def _sign_set(live: LiveProvider, audience: str = "erp", issuer: str | None = None) -> str:
    from sso.oidc.secevent import encode_set

    with live.app.app_context():
        token, _jti = encode_set(
            live.app.extensions["sso_keys"], issuer=issuer or live.url, audience=audience,
            subject="subject-1", now=datetime.now(UTC),
            events={"urn:sso:secevent:app-account:activated": {
                "status": "active", "via": "auto", "client_id": audience,
                "user": {"sub": "subject-1", "preferred_username": "someone",
                         "roles": ["accountant"]}}},
        )
    return token


def _post(app_url: str, body: str, media_type: str = "application/secevent+jwt") -> Any:
    return requests.post(app_url + EVENTS_PATH, data=body.encode(), timeout=10,
                         headers={"Content-Type": media_type}, allow_redirects=False)


def test_first_sign_in_creates_the_local_record_before_the_user_lands(
        live_provider: LiveProvider, erp_with_events: tuple[SeededApp, Any]) -> None:
    from sso.apps.service import find
    from sso.outbox import OutboxMessage

    erp, rp = erp_with_events
    browser = requests.Session()
    landing = browse_until(browser, f"{erp.url}/login", f"{erp.url}/")
    # The provider delivered the SET during the sign-in, before sending the browser back.
    [record] = rp.extensions["demo_local_accounts"].records()
    assert record["username"] == "alice" and record["status"] == "active"
    assert record["via"] == "auto" and sorted(record["roles"]) == ["accountant", "approver"]
    page = browser.get(landing, timeout=10).text
    assert "Accounts provisioned by the SSO" in page
    assert f'data-sub="{record["sub"]}"' in page
    with live_provider.app.app_context():
        [message] = OutboxMessage.query.filter_by(channel="event").all()
        assert message.purpose == "app-activated" and message.status == "sent"
        account = find(message.user_id, "erp")
        assert account is not None and account.status == "active"
        assert account.user.subject == record["sub"]


@pytest.mark.parametrize(("change", "error"), [
    ("audience", "invalid_audience"),
    ("issuer", "invalid_issuer"),
    ("signature", "invalid_key"),
    ("typ", "invalid_request"),
    ("too_big", "invalid_request"),
    ("media_type", "invalid_request"),
    ("garbage", "invalid_request"),
])
def test_bad_sets_are_refused_with_rfc8935_errors(
        live_provider: LiveProvider, erp_with_events: tuple[SeededApp, Any], change: str,
        error: str) -> None:
    erp, rp = erp_with_events
    media_type = "application/secevent+jwt"
    if change == "audience":
        body = _sign_set(live_provider, audience="crm")
    elif change == "issuer":
        body = _sign_set(live_provider, issuer="https://elsewhere.example")
    elif change == "signature":
        head, payload, signature = _sign_set(live_provider).split(".")
        body = ".".join([head, payload, ("A" if signature[0] != "A" else "B") + signature[1:]])
    elif change == "typ":
        body = _sign_jwt(live_provider, "JWT")
    elif change == "too_big":
        body = _sign_set(live_provider) + "A" * 70_000
    elif change == "media_type":
        body, media_type = _sign_set(live_provider), "application/json"
    else:
        body = "not a token"
    response = _post(erp.url, body, media_type)
    assert response.status_code == 400
    assert response.json()["err"] == error
    assert rp.extensions["demo_local_accounts"].records() == []


def test_a_repeated_set_is_accepted_once(live_provider: LiveProvider,
                                        erp_with_events: tuple[SeededApp, Any]) -> None:
    erp, rp = erp_with_events
    body = _sign_set(live_provider)
    assert _post(erp.url, body).status_code == 202
    first = rp.extensions["demo_local_accounts"].records()
    assert [r["username"] for r in first] == ["someone"]
    assert _post(erp.url, body).status_code == 202  # a retry: same jti, nothing new
    assert rp.extensions["demo_local_accounts"].records() == first


def test_records_survive_a_restart_in_the_accounts_file(tmp_path: Any) -> None:
    from sso.demo.events import LocalAccounts

    claims = {"jti": "j1", "events": {"urn:sso:secevent:app-account:revoked": {
        "status": "revoked", "user": {"sub": "s1", "preferred_username": "bob"}}}}
    path = tmp_path / "accounts.json"
    assert LocalAccounts(path).apply(claims)
    again = LocalAccounts(path)
    assert [r["status"] for r in again.records()] == ["revoked"]
    assert not again.apply(claims)


def test_an_unknown_kid_fetches_the_keys_again_once() -> None:
    """After a key rotation the app's cached JWKS lacks the new kid: it fetches once more."""
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    from sso.demo.events import SETRejected, verify

    old, new = RSAKey.generate_key(2048, {"kid": "old"}), RSAKey.generate_key(2048, {"kid": "new"})
    claims = {"iss": "https://sso.example", "aud": "erp", "jti": "j1", "events": {}}
    body = jwt.encode({"alg": "RS256", "kid": "new", "typ": "secevent+jwt"}, claims, new)
    fetched: list[bool] = []

    def jwks(force: bool) -> dict[str, Any]:
        fetched.append(force)
        keys = [old, new] if force else [old]
        return {"keys": [key.as_dict(private=False) for key in keys]}

    assert verify(body.encode(), jwks, "https://sso.example", "erp")["jti"] == "j1"
    assert fetched == [False, True]

    fetched.clear()
    forged = jwt.encode({"alg": "RS256", "kid": "other", "typ": "secevent+jwt"}, claims,
                        RSAKey.generate_key(2048, {"kid": "other"}))
    with pytest.raises(SETRejected) as refused:
        verify(forged.encode(), jwks, "https://sso.example", "erp")
    assert refused.value.code == "invalid_key" and fetched == [False, True]
