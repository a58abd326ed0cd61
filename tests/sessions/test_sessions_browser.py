"""The account's sessions page in Chromium: two browsers (two profiles) of one user, the
second ends the first's session and the first is sent back to sign in while the app hears a
logout token; the new-device mail arrives once, and not for a browser the account knows;
idle and absolute timeouts (short configured values) end the session and tell the apps."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from sso.demo.seed import DEMO_PASSWORD
from tests.conftest import LiveProvider
from tests.sessions.conftest import DemoApp, wait_for
from tests.sessions.test_single_logout_browser import logout_delivered, sign_in_everywhere

pytestmark = pytest.mark.browser


@pytest.fixture
def second_page(chromium: Any) -> Iterator[Any]:
    """Another browser profile (own cookies): the user's other computer."""
    context = chromium.new_context(locale="en-US")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def sign_in_at_provider(page: Any, live: LiveProvider, username: str = "alice") -> None:
    page.goto(f"{live.url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("form#password button[type=submit]")
    page.wait_for_url(f"{live.url}/")


def new_device_mails(live: LiveProvider) -> list[Any]:
    from sqlalchemy import select

    from sso.extensions import db
    from sso.outbox import OutboxMessage

    with live.app.app_context():
        rows = db.session.scalars(select(OutboxMessage).where(
            OutboxMessage.purpose == "new-device")).all()
        found = [(r.recipient, r.body_text) for r in rows]
        db.session.remove()
        return found


def test_ending_a_session_from_another_browser_signs_the_first_one_out(
        live_provider: LiveProvider, demo_apps: dict[str, DemoApp], delivery: Any,
        browser_page: Any, second_page: Any) -> None:
    first, second = browser_page, second_page
    sign_in_everywhere(first, live_provider, demo_apps)
    sign_in_at_provider(second, live_provider)

    second.click("#nav-sessions")
    second.wait_for_url(f"{live_provider.url}/account/sessions")
    sessions = second.locator("li.session")
    assert sessions.count() == 2
    assert second.locator("#this-device").count() == 1
    other = second.locator("li.session", has_not=second.locator("#this-device"))
    assert "ERP" in other.locator(".apps").text_content()
    assert "CRM" in other.locator(".apps").text_content()
    other.locator("button.end-session").click()
    second.wait_for_selector("#ended-notice")
    assert second.locator("li.session").count() == 1

    # The first browser must sign in again; the back-channel apps were told.
    first.goto(f"{live_provider.url}/")
    first.wait_for_url(re.compile(re.escape(live_provider.url) + r"/login"))
    for client_id in ("erp", "inventory"):
        wait_for(lambda c=client_id: logout_delivered(live_provider, c),
                 f"logout token to {client_id}")
        first.goto(demo_apps[client_id].url)
        assert first.locator("#sign-in").count() == 1, client_id


def test_new_device_mail_arrives_once_and_not_for_a_known_browser(
        live_provider: LiveProvider, demo_apps: dict[str, DemoApp], browser_page: Any,
        second_page: Any) -> None:
    first, second = browser_page, second_page
    sign_in_at_provider(first, live_provider)
    assert new_device_mails(live_provider) == []  # the account's first browser

    sign_in_at_provider(second, live_provider)
    mails = new_device_mails(live_provider)
    assert len(mails) == 1
    recipient, body = mails[0]
    assert recipient == "alice@example.com"
    assert "Chrom" in body and "127.0.0.1" in body
    assert f"{live_provider.url}/account/sessions" in body

    # The same browser again (signed out in between): known, no mail.
    second.goto(f"{live_provider.url}/account/sessions")
    second.locator("li.session", has=second.locator("#this-device")).locator(
        "button.end-session").click()
    second.wait_for_selector("h1")
    sign_in_at_provider(second, live_provider)
    assert len(new_device_mails(live_provider)) == 1


def test_the_alert_can_be_turned_off(live_provider: LiveProvider,
                                     demo_apps: dict[str, DemoApp], browser_page: Any,
                                     second_page: Any) -> None:
    sign_in_at_provider(browser_page, live_provider)
    browser_page.goto(f"{live_provider.url}/account/sessions")
    browser_page.uncheck("#new-device-alert")
    browser_page.click("#alert-settings button")
    browser_page.wait_for_selector("#new-device-alert:not(:checked)")
    sign_in_at_provider(second_page, live_provider)
    assert new_device_mails(live_provider) == []


@pytest.mark.parametrize("setting", ["SESSION_IDLE", "SESSION_MAX"])
def test_timeouts_send_the_user_back_to_sign_in_and_tell_the_apps(
        live_provider: LiveProvider, demo_apps: dict[str, DemoApp], delivery: Any,
        browser_page: Any, setting: str) -> None:
    page = browser_page
    sign_in_everywhere(page, live_provider, demo_apps)
    config = live_provider.app.config
    saved = config[setting]
    config[setting] = 1
    try:
        # A second later the session is past the limit: the next app sign-in asks for the
        # password again, and the apps the session reached got logout tokens.
        page.wait_for_timeout(1500)
        page.goto(demo_apps["crm"].url)
        page.click("#sign-out")  # CRM's own sign-out: no SSO session left to end
        page.goto(demo_apps["crm"].url)
        page.click("#sign-in")
        page.wait_for_url(re.compile(re.escape(live_provider.url) + r"/login\?"))
    finally:
        config[setting] = saved
    for client_id in ("erp", "inventory"):
        wait_for(lambda c=client_id: logout_delivered(live_provider, c),
                 f"logout token to {client_id}")
        page.goto(demo_apps[client_id].url)
        assert page.locator("#sign-in").count() == 1, client_id
    from sso.extensions import db
    from sso.sessions.models import SSOSession

    with live_provider.app.app_context():
        ended = db.session.scalars(db.select(SSOSession)).all()
        assert [s.end_reason for s in ended] == [
            "idle" if setting == "SESSION_IDLE" else "absolute"]
        db.session.remove()


def test_a_stolen_refresh_token_stops_when_the_user_changes_her_password_in_the_browser(
        live_provider: LiveProvider, demo_apps: dict[str, DemoApp], browser_page: Any) -> None:
    import requests

    from tests.conftest import Flow, basic
    from tests.interop.conftest import SeededApp

    page = browser_page
    erp = demo_apps["erp"]
    seeded = SeededApp("erp", erp.secret, erp.url)
    attacker = Flow(live_provider.app.test_client(), seeded)
    answer = attacker.authorize(username="alice", password=DEMO_PASSWORD,
                                scope="openid offline_access")
    stolen = attacker.token(answer["code"]).get_json()["refresh_token"]

    def refresh() -> Any:
        return requests.post(f"{live_provider.url}/token", headers=basic(seeded), timeout=10,
                             data={"grant_type": "refresh_token", "refresh_token": stolen})

    first = refresh()
    assert first.status_code == 200
    stolen = first.json()["refresh_token"]

    sign_in_at_provider(page, live_provider)
    page.click("#change-password-link")
    page.fill("#current-field", DEMO_PASSWORD)
    new = "Fresh-Ledger-2026-x"
    page.fill("input[name=password]", new)
    page.fill("input[name=confirm]", new)
    page.click("#change-password button[type=submit]")
    page.wait_for_selector("h1")
    assert "changed" in page.text_content("main").lower()
    response = refresh()
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
