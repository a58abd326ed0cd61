"""The demo app (Authlib's Flask client) in front of the live provider, driven by chromium:
sign in, see who you are and your roles in that app, sign out through the provider."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from sso.demo.app import create_demo_app
from sso.demo.seed import DEMO_APPS, DEMO_PASSWORD
from tests.conftest import LiveProvider, serve_in_thread
from tests.interop.conftest import SeededApp, seed_demo_app


def _serve(live: LiveProvider, index: int) -> tuple[SeededApp, Any]:
    seeded = seed_demo_app(live, index)
    port = int(seeded.url.rsplit(":", 1)[1])
    rp = create_demo_app(DEMO_APPS[index]["name"], port, live.url, seeded.client_id,
                         seeded.secret)
    return seeded, serve_in_thread(rp, port)


@pytest.fixture
def erp_served(live_provider: LiveProvider) -> Iterator[SeededApp]:
    seeded, server = _serve(live_provider, 0)
    yield seeded
    server.shutdown()


@pytest.fixture
def crm_served(live_provider: LiveProvider) -> Iterator[SeededApp]:
    seeded, server = _serve(live_provider, 1)
    yield seeded
    server.shutdown()


def _subject_of(live: LiveProvider, username: str) -> str:
    from sso.users.service import find_by_login

    with live.app.app_context():
        user = find_by_login(username)
        assert user is not None
        return str(user.subject)


def test_demo_app_signs_in_and_out_through_the_provider(
        live_provider: LiveProvider, erp_served: SeededApp, browser_page: Any) -> None:
    page = browser_page
    page.goto(erp_served.url)
    page.click("#sign-in")
    page.wait_for_url(re.compile(re.escape(live_provider.url) + r"/login\?"))
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("form#password button[type=submit]")
    page.wait_for_url(f"{erp_served.url}/")

    assert page.text_content("#name") == "Alice"
    assert page.text_content("#email") == "alice@example.com"
    assert page.text_content("#sub") == _subject_of(live_provider, "alice")
    assert sorted(page.locator("#roles span").all_text_contents()) == ["accountant", "approver"]
    assert page.text_content("#amr").startswith("pwd")

    page.click("#sign-out")
    page.wait_for_url(re.compile(re.escape(erp_served.url) + r"/\?state="))
    assert "You are signed out" in page.text_content("[role=status]")
    # The provider's session ended too: signing in again asks for the password.
    page.click("#sign-in")
    page.wait_for_url(re.compile(re.escape(live_provider.url) + r"/login\?"))


def test_demo_app_speaks_the_browsers_language(
        live_provider: LiveProvider, erp_served: SeededApp, chromium: Any) -> None:
    context = chromium.new_context(locale="zh-CN")
    try:
        page = context.new_page()
        page.goto(erp_served.url)
        assert page.text_content("#sign-in") == "使用企业账号登录"
        page.click("#sign-in")
        page.wait_for_url(re.compile(re.escape(live_provider.url) + r"/login\?"))
        # The app passed its language on (ui_locales): the sign-in page is Chinese as well.
        assert page.locator("html").get_attribute("lang") == "zh-CN"
    finally:
        context.close()


def test_single_sign_on_across_two_demo_apps(
        live_provider: LiveProvider, erp_served: SeededApp, crm_served: SeededApp,
        browser_page: Any) -> None:
    page = browser_page
    page.goto(erp_served.url)
    page.click("#sign-in")
    page.wait_for_url(re.compile(re.escape(live_provider.url) + r"/login\?"))
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("form#password button[type=submit]")
    page.wait_for_url(f"{erp_served.url}/")
    erp_subject = page.text_content("#sub")

    # CRM: the provider's session signs the browser in without showing the sign-in page.
    page.goto(crm_served.url)
    page.click("#sign-in")
    page.wait_for_url(f"{crm_served.url}/")
    assert page.text_content("#sub") == erp_subject
    assert page.locator("#roles span").all_text_contents() == ["sales-rep"]
