"""Single logout in Chromium across the three demo apps: ERP and inventory take back-channel
logout tokens, CRM is signed out through an iframe of the provider's logout page. Signing out
of any one app signs the browser out of all three."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sso.demo.seed import DEMO_PASSWORD
from tests.conftest import LiveProvider
from tests.sessions.conftest import DemoApp, wait_for

pytestmark = pytest.mark.browser


def sign_in_everywhere(page: Any, live: LiveProvider, apps: dict[str, DemoApp]) -> None:
    """Sign in to ERP with a password, then to CRM and inventory without one (SSO)."""
    first = True
    for client_id in ("erp", "crm", "inventory"):
        app = apps[client_id]
        page.goto(app.url)
        page.click("#sign-in")
        if first:
            page.wait_for_url(re.compile(re.escape(live.url) + r"/login\?"))
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", DEMO_PASSWORD)
            page.click("form#password button[type=submit]")
            first = False
        page.wait_for_url(f"{app.url}/")
        assert page.text_content("#username") == "alice", client_id


def logout_delivered(live: LiveProvider, client_id: str) -> bool:
    from sqlalchemy import select

    from sso.extensions import db
    from sso.outbox import SENT, OutboxMessage

    with live.app.app_context():
        rows = db.session.scalars(select(OutboxMessage).where(
            OutboxMessage.channel == "logout")).all()
        found = [r for r in rows if r.payload.get("client_id") == client_id]
        db.session.remove()
        return bool(found) and all(r.status == SENT for r in found)


def signed_out(page: Any, app: DemoApp) -> bool:
    page.goto(app.url)
    return page.locator("#sign-in").count() == 1 and page.locator("#user").count() == 0


@pytest.mark.parametrize("leaving", ["erp", "crm"])
def test_signing_out_of_one_demo_app_signs_out_of_all_three(
        live_provider: LiveProvider, demo_apps: dict[str, DemoApp], delivery: Any,
        browser_page: Any, leaving: str) -> None:
    page = browser_page
    sign_in_everywhere(page, live_provider, demo_apps)

    page.goto(demo_apps[leaving].url)
    page.click("#sign-out")
    # The provider's logout page loads CRM's front-channel URI, then goes back to the app.
    page.wait_for_url(re.compile(re.escape(demo_apps[leaving].url) + r"/\?state="))
    assert "signed out" in page.text_content("main").lower()

    # Front channel: CRM heard it in the browser. Back channel: once the outbox delivered
    # the logout tokens, ERP and inventory drop the browser's sign-in on its next request.
    for client_id in ("erp", "inventory"):
        if client_id != leaving:
            wait_for(lambda c=client_id: logout_delivered(live_provider, c),
                     f"logout token to {client_id}")
    for client_id, app in demo_apps.items():
        assert signed_out(page, app), f"still signed in to {client_id}"


def test_the_logout_page_frames_only_the_front_channel_apps(
        live_provider: LiveProvider, demo_apps: dict[str, DemoApp], delivery: Any,
        browser_page: Any) -> None:
    page = browser_page
    sign_in_everywhere(page, live_provider, demo_apps)
    seen: list[Any] = []
    page.on("response", lambda response: seen.append(response))
    page.goto(demo_apps["inventory"].url)
    page.click("#sign-out")
    page.wait_for_url(re.compile(re.escape(demo_apps["inventory"].url) + r"/\?state="))
    logout_pages = [r for r in seen if r.url.startswith(live_provider.url + "/logout")
                    and r.status == 200]
    assert logout_pages, "the provider showed no logout page (it has a front-channel app)"
    csp = logout_pages[-1].headers["content-security-policy"]
    assert f"frame-src {demo_apps['crm'].url}" in csp
    assert demo_apps["erp"].url not in csp.split("frame-src", 1)[1]
    assert "frame-ancestors 'none'" in csp
    framed = [r.url for r in seen if r.url.startswith(demo_apps["crm"].url
                                                      + "/sso/frontchannel-logout")]
    assert len(framed) == 1 and "iss=" in framed[0] and "sid=" in framed[0]
