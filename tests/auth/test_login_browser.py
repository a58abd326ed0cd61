"""The sign-in page in a real browser: the password form signs in and lands on the account page."""

from __future__ import annotations

from typing import Any

from tests.conftest import PASSWORD


def test_password_sign_in_in_a_browser(live_provider: Any, browser_page: Any, alice: Any) -> None:
    page = browser_page
    page.goto(f"{live_provider.url}/login")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    assert "Incorrect username or password" in page.content()
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_provider.url}/")
    assert "alice" in page.content()
    cookies = {c["name"]: c for c in page.context.cookies()}
    session_cookie = next(c for name, c in cookies.items() if "sso" in name.lower())
    assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Lax"
