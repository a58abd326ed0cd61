"""Scan to sign in with two real browsers: a desktop Chromium shows the code, an emulated
Pixel 7 with its own signed-in session reads it (decoded from a screenshot with zxing-cpp),
confirms, and the desktop lands at the app's redirect URI signed in as the phone's user."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from tests.browser import read_qr, sign_in_with_password
from tests.conftest import PASSWORD, free_port, pkce_pair

pytestmark = pytest.mark.browser


class _App(BaseHTTPRequestHandler):
    """The relying party's callback: it only has to answer."""

    def do_GET(self) -> None:  # noqa: N802
        body = b"<!doctype html><title>ERP</title><h1>ERP</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def relying_party(make_client: Any) -> Iterator[Any]:
    server = HTTPServer(("127.0.0.1", free_port()), _App)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield make_client("ERP", [f"http://127.0.0.1:{server.server_port}/callback"])
    server.shutdown()


@pytest.mark.parametrize("number_matching", [False, True], ids=["confirm", "number"])
def test_a_phone_scans_the_desktop_code_and_the_desktop_lands_in_the_app(
        app: Any, chromium: Any, phone_device: dict[str, Any], live_provider: Any,
        relying_party: Any, alice: Any, number_matching: bool) -> None:
    """With number matching on, the phone confirms by picking, among its buttons, the number
    the desktop shows."""
    url = live_provider.url
    erp = relying_party
    if number_matching:
        from sso.extensions import db
        from sso.qrlogin.service import set_number_matching

        with app.app_context():
            set_number_matching(erp.client_id, True)
            db.session.commit()
    verifier, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": erp.client_id,
              "redirect_uri": erp.redirect_uri, "scope": "openid profile", "state": "st",
              "code_challenge": challenge, "code_challenge_method": "S256"}

    desktop_context = chromium.new_context(locale="en-US")
    phone_context = chromium.new_context(**phone_device, locale="en-US")
    try:
        desktop = desktop_context.new_page()
        desktop.set_default_timeout(15_000)
        desktop.goto(f"{url}/authorize?{urlencode(params)}")
        desktop.get_by_role("link", name="Scan to sign in").click()
        desktop.locator("#qr-status", has_text="Scan this code").wait_for()
        scanned_url = read_qr(desktop.locator("#qr-image"))
        assert scanned_url.startswith(f"{url}/qr/s/")

        phone = phone_context.new_page()
        phone.set_default_timeout(15_000)
        phone.goto(f"{url}/login")
        sign_in_with_password(phone, "alice", PASSWORD)
        phone.wait_for_url(f"{url}/")
        phone.goto(scanned_url)
        assert "Chrome" in phone.locator("#qr-device").inner_text()
        assert phone.locator("#qr-app").inner_text() == "ERP"
        desktop.locator("#qr-status", has_text="Confirm the sign-in on your phone").wait_for()
        if number_matching:
            shown = desktop.locator("#qr-number-value").inner_text()
            assert len(phone.locator(".qr-choice").all()) == 3
            phone.locator(".qr-choice", has_text=shown).click()
        else:
            phone.click("#qr-confirm")
        phone.locator("#qr-message", has_text="signed in on your computer").wait_for()

        desktop.locator("#qr-who", has_text="Signed in as Alice (alice)").wait_for()
        desktop.click("#qr-continue")
        desktop.wait_for_url(f"{erp.redirect_uri}**")
        query = parse_qs(urlsplit(desktop.url).query)
        assert query["state"] == ["st"]
        tokens = requests.post(f"{url}/token", auth=(erp.client_id, erp.secret), data={
            "grant_type": "authorization_code", "code": query["code"][0],
            "redirect_uri": erp.redirect_uri, "code_verifier": verifier}, timeout=30).json()
        payload = tokens["id_token"].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert claims["sub"] == alice.subject and claims["amr"] == ["qr"]
    finally:
        desktop_context.close()
        phone_context.close()


def test_an_expired_code_is_renewed_with_one_click(chromium: Any, live_provider: Any,
                                                   alice: Any) -> None:
    context = chromium.new_context(locale="zh-CN")
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{live_provider.url}/qr/login")
        page.locator("#qr-status", has_text="请用已登录的手机扫描此二维码").wait_for()
        first = page.locator("#qr-image").get_attribute("src")
        qr_id = first.split("/")[3]
        with live_provider.app.app_context():
            store = live_provider.app.extensions["sso_qr_store"]
            store.redis.client.delete(store.key(qr_id))
            store.redis.client.publish(store.channel(qr_id), "expired")
        page.locator("#qr-status", has_text="二维码已过期").wait_for()
        page.click("#qr-renew")
        page.locator("#qr-status", has_text="请用已登录的手机扫描此二维码").wait_for()
        assert page.locator("#qr-image").get_attribute("src") != first
    finally:
        context.close()


def test_without_eventsource_the_desktop_long_polls(chromium: Any, live_provider: Any,
                                                    relying_party: Any, alice: Any) -> None:
    url = live_provider.url
    _verifier, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": relying_party.client_id,
              "redirect_uri": relying_party.redirect_uri, "scope": "openid", "state": "lp",
              "code_challenge": challenge, "code_challenge_method": "S256"}
    context = chromium.new_context(locale="en-US")
    context.add_init_script("delete window.EventSource;")  # an old browser, or a proxy
    try:
        desktop = context.new_page()
        desktop.set_default_timeout(15_000)
        polls: list[str] = []
        desktop.on("request", lambda r: polls.append(r.url) if "/poll?" in r.url else None)
        desktop.goto(f"{url}/qr/login?" + urlencode({"flow": _flow_of(desktop, url, params)}))
        desktop.locator("#qr-status", has_text="Scan this code").wait_for()
        qr_id = desktop.locator("#qr-image").get_attribute("src").split("/")[3]

        phone = requests.Session()
        login = phone.get(f"{url}/login", timeout=30)
        phone.post(f"{url}/login", timeout=30, data={
            "csrf_token": _csrf(login.text), "username": "alice", "password": PASSWORD})
        confirm = phone.get(f"{url}/qr/s/{qr_id}", timeout=30)
        desktop.locator("#qr-status", has_text="Confirm the sign-in on your phone").wait_for()
        phone.post(f"{url}/qr/s/{qr_id}/approve", data={"csrf_token": _csrf(confirm.text)},
                   timeout=30)
        desktop.click("#qr-continue")
        desktop.wait_for_url(f"{relying_party.redirect_uri}**")
        assert parse_qs(urlsplit(desktop.url).query)["state"] == ["lp"]
        assert polls, "the page did not long-poll"
    finally:
        context.close()


def _flow_of(page: Any, url: str, params: dict[str, str]) -> str:
    page.goto(f"{url}/authorize?{urlencode(params)}")
    return parse_qs(urlsplit(page.url).query)["flow"][0]


def _csrf(html: str) -> str:
    import re

    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)
