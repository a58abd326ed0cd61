"""Changing the mobile number on the profile page in Chromium: the code is read from the
development outbox page, as a developer would read the SMS; a wrong code says so and the
right one still works; the number changes, verified, and the old number gets a notice."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import PASSWORD, LiveProvider

pytestmark = pytest.mark.browser

OLD, NEW = "+8613800000001", "+8613900000002"


def _outbox(page: Any, live: LiveProvider, to: str, purpose: str) -> str:
    outbox = page.context.new_page()
    outbox.goto(f"{live.url}/dev/outbox?to={quote(to)}")
    text = outbox.locator(f"article[data-purpose={purpose}] pre").first.inner_text()
    outbox.close()
    return str(text)


def test_change_the_number_with_the_code_sent_to_it(
        live_provider: LiveProvider, make_user: Any, browser_page: Any) -> None:
    make_user("alice", phone=OLD)
    page = browser_page
    page.goto(f"{live_provider.url}/login")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("form#password button[type=submit]")
    page.wait_for_url(f"{live_provider.url}/")
    page.click("#edit-profile-link")
    page.wait_for_selector("#phone-form")
    assert OLD in page.inner_text("#phone-current")

    page.fill("#profile-phone", "+86 139 0000 0002")
    page.click("#phone-form button[type=submit]")
    page.wait_for_selector("#phone-sent")
    assert NEW in page.inner_text("#phone-sent")
    found = re.search(r"\b(\d{6})\b", _outbox(page, live_provider, NEW, "phone_change_code"))
    assert found
    code = found.group(1)

    page.fill("#phone-code", "000000" if code != "000000" else "111111")
    page.click("#phone-confirm button:not([name=cancel])")
    page.wait_for_selector("#phone-errors")
    assert "Tries left: 4" in page.inner_text("#phone-errors")
    page.fill("#phone-code", code)
    page.click("#phone-confirm button:not([name=cancel])")
    page.wait_for_selector("#phone-changed")
    assert NEW in page.inner_text("#phone-current")
    assert "verified" in page.inner_text("#phone-current")
    assert "not verified" not in page.inner_text("#phone-current")
    assert page.locator("#phone-confirm").count() == 0

    notice = _outbox(page, live_provider, OLD, "phone_changed")
    assert "ending in 0002" in notice and code not in notice
