"""The ``sms-code`` door in Chromium: from the app, through the sign-in page's **Code by SMS**
tab, the code read from the development outbox page, back at the app with a code whose
ID token says ``amr`` ``["sms"]``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask

from sso import create_app
from tests.browser import RelyingApp
from tests.conftest import LiveProvider, free_port, serve_in_thread

pytestmark = pytest.mark.browser

PHONE = "+8613800000001"


@pytest.fixture(scope="module")
def sms_live(app: Flask, app_config: dict[str, Any]) -> Iterator[LiveProvider]:
    """The provider with ``SSO_SMS_SIGN_IN=true`` on a real port (same database and Redis)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    live = create_app({**app_config, "ISSUER": url, "SMS_SIGN_IN": "true"})
    server = serve_in_thread(live, port)
    yield LiveProvider(url=url, app=live)
    server.shutdown()


@pytest.fixture
def relying_app(make_client: Any, sms_live: LiveProvider) -> Iterator[RelyingApp]:
    origin = f"http://127.0.0.1:{free_port()}"
    client = make_client("App", [f"{origin}/cb"], post_logout_redirect_uris=[f"{origin}/bye"])
    rp = RelyingApp(sms_live.url, client, f"{origin}/cb")
    server = serve_in_thread(rp, int(origin.rsplit(":", 1)[1]))
    yield rp
    server.shutdown()


def code_from_outbox(page: Any, live: LiveProvider) -> str:
    """Read the newest sign-in SMS on the development outbox page, as a developer would."""
    outbox = page.context.new_page()
    outbox.goto(f"{live.url}/dev/outbox?to={quote(PHONE)}")
    text = outbox.locator("article[data-purpose=sign_in_code] pre").first.inner_text()
    outbox.close()
    found = re.search(r"\b(\d{6})\b", text)
    assert found, text
    return found.group(1)


@pytest.mark.door("sms-code")
def test_sign_in_with_a_code_by_sms_ends_in_the_app(
        sms_live: LiveProvider, relying_app: RelyingApp, make_phone_user: Any,
        browser_page: Any) -> None:
    make_phone_user()
    page = browser_page
    page.goto(relying_app.authorize_url())
    page.click("text=Code by SMS")
    page.fill("input[name=login]", "alice")
    page.click("#sms-send button[type=submit]")
    page.wait_for_selector("#sms-verify")
    assert "we have sent it a 6-digit code" in page.inner_text("main")
    page.fill("input[name=code]", code_from_outbox(page, sms_live))
    page.click("#sms-verify button[type=submit]")
    answer = relying_app.landed(page)
    assert relying_app.id_token_claims(answer)["amr"] == ["sms"]


@pytest.mark.door("sms-code")
def test_a_wrong_code_says_so_in_chinese_and_the_right_one_still_works(
        sms_live: LiveProvider, relying_app: RelyingApp, make_phone_user: Any,
        chromium: Any) -> None:
    make_phone_user(locale="zh-CN")
    context = chromium.new_context(locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(relying_app.authorize_url())
        page.click("text=短信验证码")
        page.fill("input[name=login]", PHONE)
        page.click("#sms-send button[type=submit]")
        code = code_from_outbox(page, sms_live)
        page.fill("input[name=code]", f"{(int(code) + 1) % 10**6:06d}")
        page.click("#sms-verify button[type=submit]")
        assert "验证码不正确" in page.inner_text("#sms-error")
        page.fill("input[name=code]", code)
        page.click("#sms-verify button[type=submit]")
        assert "code" in relying_app.landed(page)
    finally:
        context.close()
