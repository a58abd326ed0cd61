"""The attacks of RFC 10027 (cross-device flows) on scan-to-sign-in, each tried in Chromium
with a desktop context and an emulated phone context, as an attacker would."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import RelyingApp, read_qr, sign_in_with_password
from tests.conftest import PASSWORD, LiveProvider, free_port, serve_in_thread

pytestmark = pytest.mark.browser


class LinkPage:
    """A page on another site (``localhost`` is another site than ``127.0.0.1``) that holds
    the link an attacker sends: a chat message, a mail, a page of a sibling subdomain."""

    def __init__(self) -> None:
        self.href = ""

    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html")])
        return [f'<!doctype html><title>Chat</title><a id=link href="{self.href}">open</a>'
                .encode()]


@pytest.fixture
def link_page() -> Iterator[tuple[LinkPage, str]]:
    page = LinkPage()
    port = free_port()
    server = serve_in_thread(page, port)
    yield page, f"http://localhost:{port}/"
    server.shutdown()


@pytest.fixture
def make_app(make_client: Any, live_provider: LiveProvider) -> Iterator[Any]:
    servers: list[Any] = []

    def make(name: str = "ERP", **kwargs: Any) -> RelyingApp:
        origin = f"http://127.0.0.1:{free_port()}"
        client = make_client(name, [f"{origin}/cb"], **kwargs)
        app = RelyingApp(live_provider.url, client, f"{origin}/cb")
        servers.append(serve_in_thread(app, int(origin.rsplit(":", 1)[1])))
        return app

    yield make
    for server in servers:
        server.shutdown()


@pytest.fixture
def devices(chromium: Any, phone_device: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """A desktop page and a phone page, each in a browser profile of its own."""
    desktop_context = chromium.new_context(locale="en-US")
    phone_context = chromium.new_context(**phone_device, locale="en-US")
    desktop, phone = desktop_context.new_page(), phone_context.new_page()
    desktop.set_default_timeout(15_000)
    phone.set_default_timeout(15_000)
    yield desktop, phone
    desktop_context.close()
    phone_context.close()


def show_code(desktop: Any, rp: RelyingApp) -> str:
    """The desktop opens the app's sign-in and the QR tab; the address in the code."""
    desktop.goto(rp.authorize_url())
    desktop.get_by_role("link", name="Scan to sign in").click()
    desktop.locator("#qr-status", has_text="Scan this code").wait_for()
    return read_qr(desktop.locator("#qr-image"))


def sign_in_phone(phone: Any, url: str, username: str = "alice") -> None:
    phone.goto(f"{url}/login")
    sign_in_with_password(phone, username, PASSWORD)
    phone.wait_for_url(f"{url}/")


def test_a_code_sent_as_a_link_is_refused_and_a_scanned_one_works(
        devices: tuple[Any, Any], live_provider: LiveProvider, make_app: Any, alice: Any,
        link_page: tuple[LinkPage, str]) -> None:
    desktop, phone = devices
    scanned = show_code(desktop, make_app())
    sign_in_phone(phone, live_provider.url)

    page, chat = link_page
    page.href = scanned
    phone.goto(chat)
    phone.click("#link")
    phone.wait_for_url(scanned)
    assert phone.locator("h1").inner_text() == "Scan the code with your phone"
    assert phone.locator("#qr-confirm").count() == 0
    desktop.locator("#qr-status", has_text="Scan this code").wait_for()  # still not scanned

    phone.goto(scanned)  # what the camera does: a direct navigation
    phone.locator("#qr-confirm").wait_for()
    desktop.locator("#qr-status", has_text="Confirm the sign-in on your phone").wait_for()


def _audit(live: LiveProvider, event: str) -> list[tuple[str, int | None]]:
    from sso.audit import AuditEvent
    from sso.extensions import db

    with live.app.app_context():
        rows = db.session.query(AuditEvent).filter_by(event=event).all()
        found = [(row.outcome, row.user_id) for row in rows]
        db.session.remove()
        return found


def test_a_session_swap_is_seen_on_the_desktop_and_refused(
        devices: tuple[Any, Any], live_provider: LiveProvider, make_app: Any, alice: Any,
        make_user: Any) -> None:
    """Someone who sees the desktop's code (a shared screen) approves it with his phone: the
    desktop asks "Signed in as bob, continue?" instead of carrying on as him."""
    bob = make_user("bob")
    desktop, phone = devices
    rp = make_app()
    scanned = show_code(desktop, rp)
    sign_in_phone(phone, live_provider.url, "bob")
    phone.goto(scanned)
    phone.click("#qr-confirm")
    phone.locator("#qr-message", has_text="signed in on your computer").wait_for()

    desktop.locator("#qr-who", has_text="Signed in as Bob (bob). Continue?").wait_for()
    assert not rp.received  # nothing reached the app without the desktop's click
    desktop.click("#qr-not-me")
    desktop.locator("#qr-error", has_text="nobody was signed in").wait_for()
    assert not rp.received
    assert ("alarm", bob.id) in _audit(live_provider, "qr.not_me")
    # The desktop holds no session: the app's sign-in asks again.
    desktop.goto(rp.authorize_url())
    desktop.wait_for_url("**/login?**")


class EventsEndpoint:
    """An app's events endpoint (RFC 8935 push): it keeps every SET it receives."""

    def __init__(self) -> None:
        self.received: list[str] = []

    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.received.append(environ["wsgi.input"].read(length).decode())
        start_response("202 Accepted", [("Content-Type", "text/plain")])
        return [b""]


def _claims(token: str) -> dict[str, Any]:
    import base64
    import json

    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def test_this_wasnt_me_cancels_alarms_mails_pauses_and_tells_the_apps(
        devices: tuple[Any, Any], live_provider: LiveProvider, make_app: Any, alice: Any,
        make_client: Any) -> None:
    desktop, phone = devices
    endpoint = EventsEndpoint()
    port = free_port()
    server = serve_in_thread(endpoint, port)
    try:
        hr = make_client("HR", ["https://hr.example.com/cb"],
                         policy={"events_endpoint": f"http://127.0.0.1:{port}/events"})
        rp = make_app()
        scanned = show_code(desktop, rp)
        sign_in_phone(phone, live_provider.url)
        phone.goto(scanned)

        # Decline first: Cancel comes before Confirm and is at least as large.
        cancel, confirm = phone.locator("#qr-cancel"), phone.locator("#qr-confirm")
        c_box, k_box = cancel.bounding_box(), confirm.bounding_box()
        assert c_box["width"] * c_box["height"] >= k_box["width"] * k_box["height"]
        assert c_box["y"] < k_box["y"]
        assert cancel.evaluate("b => getComputedStyle(b).backgroundColor") == \
            confirm.evaluate("b => getComputedStyle(b).backgroundColor")

        phone.click("#qr-report")
        phone.locator("h1", has_text="Thank you for reporting it").wait_for()
        desktop.locator("#qr-status", has_text="cancelled on the phone").wait_for()
        assert not rp.received
        assert ("alarm", alice.id) in _audit(live_provider, "qr.report")

        from sso import outbox
        from sso.extensions import db
        from sso.outbox import OutboxMessage

        with live_provider.app.app_context():
            mails = db.session.query(OutboxMessage).filter_by(channel="mail").all()
            assert [(m.recipient, m.purpose) for m in mails] == [
                ("alice@example.com", "qr-report")]
            assert "This wasn't me" in (mails[0].body_text or "")
            outbox.deliver_due(live_provider.app.config)
            db.session.remove()
        (token,) = endpoint.received
        claims = _claims(token)
        assert claims["aud"] == hr.client_id and claims["sub"] == alice.subject
        assert "urn:sso:secevent:qr:reported" in claims["events"]

        # Further approvals are refused for a while: a fresh code scanned by the same phone.
        desktop.click("#qr-renew")
        desktop.locator("#qr-status", has_text="Scan this code").wait_for()
        phone.goto(read_qr(desktop.locator("#qr-image")))
        phone.locator("h1", has_text="Scan to sign in is paused").wait_for()
        assert phone.locator("#qr-confirm").count() == 0
    finally:
        server.shutdown()


def test_a_tossed_cookie_is_refused(devices: tuple[Any, Any], live_provider: LiveProvider,
                                    make_app: Any, alice: Any, make_user: Any) -> None:
    """A sibling subdomain's page sets the attacker's own flow cookie (holding his form token)
    with a longer path, so the phone sends it first: the provider refuses both."""
    import requests

    make_user("mallory")
    desktop, phone = devices
    scanned = show_code(desktop, make_app())
    attacker = requests.Session()
    attacker.get(f"{live_provider.url}/login", timeout=10)
    tossed = attacker.cookies.get("sso_flow")
    assert tossed
    sign_in_phone(phone, live_provider.url)
    phone.context.add_cookies([{"name": "sso_flow", "value": tossed, "domain": "127.0.0.1",
                                "path": "/qr/s"}])
    phone.goto(scanned)
    assert "two cookies with the same name" in phone.locator("main").inner_text()
    assert phone.locator("#qr-confirm").count() == 0
