"""CIBA (OpenID Connect Client-Initiated Backchannel Authentication Core 1.0) on the phone
channel: a poll-mode and a ping-mode client (with a real notification endpoint) get tokens
after the phone approves, and the spec's errors before and after."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.browser import sign_in_with_password
from tests.conftest import PASSWORD, LiveProvider, csrf_of, free_port, serve_in_thread
from tests.qrlogin.conftest import Phone

CIBA = "urn:openid:params:grant-type:ciba"


def _ciba_client(make_client: Any, mode: str, endpoint: str | None = None) -> Any:
    policy: dict[str, Any] = {"ciba_mode": mode}
    if endpoint:
        policy["ciba_notification_endpoint"] = endpoint
    return make_client("Call centre", ["https://cc.example.com/cb"],
                       grant_types=["authorization_code", CIBA], policy=policy)


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _token(http: Any, client: Any, auth_req_id: str) -> Any:
    return http.post("/token", data={"grant_type": CIBA, "auth_req_id": auth_req_id},
                     headers=_basic(client))


def _basic(client: Any) -> dict[str, str]:
    raw = base64.b64encode(f"{client.client_id}:{client.secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def _start(http: Any, client: Any, **params: str) -> Any:
    data = {"scope": "openid profile", "login_hint": "alice", **params}
    return http.post("/bc-authorize", data=data, headers=_basic(client))


def test_discovery_names_the_endpoint_and_modes(client: Any) -> None:
    meta = client.get("/.well-known/openid-configuration").get_json()
    assert meta["backchannel_authentication_endpoint"] == "http://sso.test/bc-authorize"
    assert meta["backchannel_token_delivery_modes_supported"] == ["poll", "ping"]
    assert CIBA in meta["grant_types_supported"]


def test_poll_mode(app: Any, client: Any, make_client: Any, phone: Phone, alice: Any) -> None:
    cc = _ciba_client(make_client, "poll")
    started = _start(client, cc, binding_message="K7-42", requested_expiry="300")
    assert started.status_code == 200, started.get_data(as_text=True)
    body = started.get_json()
    assert body["expires_in"] == 300 and body["interval"] == 5
    auth_req_id = body["auth_req_id"]
    assert _token(client, cc, auth_req_id).get_json()["error"] == "authorization_pending"
    too_fast = _token(client, cc, auth_req_id)
    assert too_fast.status_code == 400 and too_fast.get_json()["error"] == "slow_down"

    listing = phone.http.get("/qr/requests").get_data(as_text=True)
    assert "Call centre: K7-42" in listing
    ref = listing.split("/qr/requests/")[1].split('"')[0]
    page = phone.http.get(f"/qr/requests/{ref}")
    assert "K7-42" in page.get_data(as_text=True)
    approved = phone.http.post(f"/qr/requests/{ref}/approve",
                               data={"csrf_token": csrf_of(page.get_data(as_text=True))})
    assert approved.status_code == 200

    tokens = _token(client, cc, auth_req_id)
    assert tokens.status_code == 200, tokens.get_data(as_text=True)
    claims = _claims(tokens.get_json()["id_token"])
    assert claims["sub"] == alice.subject and claims["aud"] == cc.client_id
    assert "qr" in claims["amr"]
    again = _token(client, cc, auth_req_id)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"


def test_denied_expired_and_bad_requests(app: Any, client: Any, make_client: Any,
                                         phone: Phone, alice: Any) -> None:
    cc = _ciba_client(make_client, "poll")
    auth_req_id = _start(client, cc).get_json()["auth_req_id"]
    listing = phone.http.get("/qr/requests").get_data(as_text=True)
    ref = listing.split("/qr/requests/")[1].split('"')[0]
    page = phone.http.get(f"/qr/requests/{ref}").get_data(as_text=True)
    phone.http.post(f"/qr/requests/{ref}/deny", data={"csrf_token": csrf_of(page)})
    assert _token(client, cc, auth_req_id).get_json()["error"] == "access_denied"

    expiring = _start(client, cc).get_json()["auth_req_id"]
    with app.app_context():
        from sso.security import hash_token

        redis_store = app.extensions["sso_redis"]
        redis_store.client.delete(redis_store.key("ciba", "r", hash_token(expiring)[:43]))
    assert _token(client, cc, expiring).get_json()["error"] == "expired_token"
    assert _token(client, cc, "junk").get_json()["error"] == "expired_token"

    cases = [
        ({"login_hint": ""}, "invalid_request"),
        ({"login_hint": "nobody"}, "unknown_user_id"),
        ({"binding_message": "x" * 65}, "invalid_binding_message"),
        ({"requested_expiry": "0"}, "invalid_request"),
        ({"requested_expiry": "soon"}, "invalid_request"),
        ({"scope": "profile"}, "invalid_request"),
        ({"id_token_hint": "not.a.jwt"}, "invalid_request"),
    ]
    for params, error in cases:
        answer = _start(client, cc, **params)
        assert answer.status_code == 400, (params, answer.get_data(as_text=True))
        assert answer.get_json()["error"] == error, params
    plain = make_client("Plain", ["https://plain.example.com/cb"])
    refused = _start(client, plain)
    assert refused.status_code in (400, 401)
    assert refused.get_json()["error"] == "unauthorized_client"
    assert _token(client, plain, auth_req_id).get_json()["error"] == "unauthorized_client"
    stranger = client.post("/bc-authorize", data={"scope": "openid", "login_hint": "alice"})
    assert stranger.status_code == 401 and stranger.get_json()["error"] == "invalid_client"


class Notifications:
    """The ping-mode client's notification endpoint: a real HTTP server."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        self.received.append((environ.get("HTTP_AUTHORIZATION", ""), body))
        start_response("204 No Content", [])
        return [b""]


@pytest.fixture
def notifications() -> Iterator[tuple[Notifications, str]]:
    endpoint = Notifications()
    port = free_port()
    server = serve_in_thread(endpoint, port)
    yield endpoint, f"http://127.0.0.1:{port}/ciba"
    server.shutdown()


@pytest.mark.browser
def test_ping_mode_with_the_phone_page(live_provider: LiveProvider, make_client: Any,
                                       alice: Any, chromium: Any, phone_device: dict[str, Any],
                                       notifications: tuple[Notifications, str]) -> None:
    endpoint, url = notifications
    cc = _ciba_client(make_client, "ping", url)
    api = requests.Session()
    started = api.post(f"{live_provider.url}/bc-authorize", auth=(cc.client_id, cc.secret),
                       data={"scope": "openid", "login_hint": "alice",
                             "binding_message": "Call 7731",
                             "client_notification_token": "note-token-123"}, timeout=10)
    assert started.status_code == 200, started.text
    auth_req_id = started.json()["auth_req_id"]
    assert "interval" not in started.json()

    context = chromium.new_context(**phone_device, locale="en-US")
    try:
        phone = context.new_page()
        phone.set_default_timeout(15_000)
        phone.goto(f"{live_provider.url}/qr/requests")
        sign_in_with_password(phone, "alice", PASSWORD)
        phone.wait_for_url(f"{live_provider.url}/qr/requests")
        phone.get_by_role("link", name="Call centre: Call 7731").click()
        # The buttons' sizes are measured once the page has loaded: a click on a link does
        # not wait for the new page's stylesheet, and an unstyled page has inline buttons.
        phone.wait_for_url(f"{live_provider.url}/qr/requests/*", wait_until="load")
        assert phone.locator("#ciba-binding").inner_text() == "Call 7731"
        c_box = phone.locator("#ciba-cancel").bounding_box()
        k_box = phone.locator("#ciba-confirm").bounding_box()
        assert c_box["y"] < k_box["y"] and c_box["width"] >= k_box["width"]
        pending = api.post(f"{live_provider.url}/token", auth=(cc.client_id, cc.secret),
                           data={"grant_type": CIBA, "auth_req_id": auth_req_id}, timeout=10)
        assert pending.json()["error"] == "authorization_pending"
        phone.click("#ciba-confirm")
        phone.locator("#qr-message", has_text="signing you in").wait_for()
    finally:
        context.close()
    assert endpoint.received == [("Bearer note-token-123", {"auth_req_id": auth_req_id})]
    tokens = api.post(f"{live_provider.url}/token", auth=(cc.client_id, cc.secret),
                      data={"grant_type": CIBA, "auth_req_id": auth_req_id}, timeout=10)
    assert tokens.status_code == 200, tokens.text
    assert _claims(tokens.json()["id_token"])["sub"] == alice.subject


def test_this_wasnt_me_on_a_ciba_request(app: Any, client: Any, make_client: Any,
                                         phone: Phone, alice: Any) -> None:
    """A request the user did not make: denied, an alarm, a mail, and approvals paused."""
    from sso.audit import AuditEvent
    from sso.extensions import db
    from sso.outbox import OutboxMessage

    cc = _ciba_client(make_client, "poll")
    first = _start(client, cc, binding_message="not mine").get_json()["auth_req_id"]
    listing = phone.http.get("/qr/requests").get_data(as_text=True)
    ref = listing.split("/qr/requests/")[1].split('"')[0]
    page = phone.http.get(f"/qr/requests/{ref}").get_data(as_text=True)
    assert phone.http.post(f"/qr/requests/{ref}/report",
                           data={"csrf_token": csrf_of(page)}).status_code == 200
    assert _token(client, cc, first).get_json()["error"] == "access_denied"
    with app.app_context():
        alarms = db.session.scalars(db.select(AuditEvent).where(
            AuditEvent.event == "ciba.deny", AuditEvent.outcome == "alarm")).all()
        mails = db.session.scalars(db.select(OutboxMessage).where(
            OutboxMessage.channel == "mail")).all()
        assert len(alarms) == 1 and [m.recipient for m in mails] == ["alice@example.com"]
    _start(client, cc)
    listing = phone.http.get("/qr/requests").get_data(as_text=True)
    ref = listing.split("/qr/requests/")[1].split('"')[0]
    page = phone.http.get(f"/qr/requests/{ref}").get_data(as_text=True)
    paused = phone.http.post(f"/qr/requests/{ref}/approve", data={"csrf_token": csrf_of(page)})
    assert paused.status_code == 403 and "paused" in paused.get_data(as_text=True)
