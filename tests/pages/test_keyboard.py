"""Signing in with the keyboard alone, in Debian's chromium: the focus goes where a person
expects, it can always be seen, and Enter submits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import PASSWORD
from tests.pages.catalogue import Visit, apps_origin, build_world

pytestmark = [pytest.mark.browser,
              pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

_FOCUSED = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  return {id: el.id || el.textContent.trim(), tag: el.tagName,
          outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2};
}"""


@pytest.fixture
def visit(chromium: Any, live_provider: Any) -> Iterator[Visit]:
    one = Visit(chromium, live_provider, build_world(live_provider.app), "en")
    yield one
    one.close()


def focused(page: Any) -> dict[str, Any]:
    return dict(page.evaluate(_FOCUSED))


def cursor_in(page: Any, element_id: str) -> None:
    """Wait until the page has put the cursor in ``element_id``: typing before that (a slow
    page under load) would lose the first keys. It fails, after the wait, if it never does."""
    page.wait_for_function("id => document.activeElement && document.activeElement.id === id",
                           arg=element_id)


def cursor_in_username(page: Any) -> None:
    cursor_in(page, "username")


def tab_until(page: Any, element_id: str, limit: int = 20) -> list[str]:
    """Press Tab until ``element_id`` has the focus; every stop must show it has it."""
    stops = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = focused(page)
        assert now["outline"], f"no visible focus on {now}"
        stops.append(now["id"])
        if now["id"] == element_id:
            return stops
    raise AssertionError(f"Tab never reached #{element_id}: {stops}")


def test_password_sign_in_with_the_keyboard(visit: Visit) -> None:
    page = visit.page
    visit.authorize("erp")
    page.wait_for_selector("form#password")
    # The page opens with the cursor in the username field.
    cursor_in_username(page)
    # Back to the top of the page: the ways to sign in, languages, skip link; all visible.
    stops = []
    for _ in range(5):
        page.keyboard.press("Shift+Tab")
        now = focused(page)
        assert now["outline"], f"no visible focus on {now}"
        stops.append(now["id"])
    assert stops == ["method-qrlogin-desktop", "method-password", "English", "中文",
                     "Skip to the content"]
    assert tab_until(page, "username")[-1] == "username"
    page.keyboard.type("alice")
    assert tab_until(page, "password-field") == ["password-field"]
    page.keyboard.type(PASSWORD)
    # The show-password button comes right after its field, and works from the keyboard.
    assert tab_until(page, "Show") == ["Show"]
    page.keyboard.press("Enter")
    assert page.locator("#password-field").get_attribute("type") == "text"
    assert page.locator("button.reveal").get_attribute("aria-pressed") == "true"
    page.keyboard.press("Space")
    assert page.locator("#password-field").get_attribute("type") == "password"
    page.keyboard.press("Shift+Tab")
    assert focused(page)["id"] == "password-field"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{apps_origin()}/erp/callback**")


def test_a_wrong_password_is_announced_and_tied_to_the_fields(visit: Visit) -> None:
    page = visit.page
    visit.authorize("erp")
    cursor_in_username(page)
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    page.keyboard.type("wrong password")
    page.keyboard.press("Enter")
    page.wait_for_selector("#login-error")
    assert page.locator("#login-error").get_attribute("role") == "alert"
    for field in ("#username", "#password-field"):
        assert "login-error" in page.locator(field).get_attribute("aria-describedby")
        assert page.locator(field).get_attribute("aria-invalid") == "true"


def bob_types_a_wrong_code(visit: Visit) -> None:
    """Bob, on his way to Payroll, passes the password page with the keyboard and types a
    wrong second-factor code (not yet sent)."""
    page = visit.page
    visit.authorize("payroll")
    cursor_in_username(page)
    page.keyboard.type("bob")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("#mfa-verify")
    cursor_in(page, "code")
    page.keyboard.type("000000")


def tick_remember_and_verify(visit: Visit) -> None:
    """Space ticks the remember-this-device box (the focus is on it); back to the code and
    Enter sends it, and the browser lands at Payroll."""
    page = visit.page
    page.keyboard.press("Space")
    assert page.locator("#remember-device").is_checked()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{apps_origin()}/payroll/callback**")


def test_mfa_sign_in_with_the_keyboard(visit: Visit) -> None:
    page = visit.page
    # A wrong code: said aloud, tied to the field, the cursor back in it.
    bob_types_a_wrong_code(visit)
    page.keyboard.press("Enter")
    page.wait_for_selector("#mfa-error")
    assert page.locator("#mfa-error").get_attribute("role") == "alert"
    assert "mfa-error" in page.locator("#code").get_attribute("aria-describedby")
    cursor_in(page, "code")
    page.keyboard.type(visit.code("bob"))
    # The remember-this-device box is the next stop and Space ticks it.
    assert tab_until(page, "remember-device") == ["remember-device"]
    tick_remember_and_verify(visit)


def test_a_late_script_leaves_the_cursor_where_the_person_moved_it(visit: Visit) -> None:
    """The page's script runs deferred; on a slow line it runs after a quick person has typed
    the code and moved on. It must not pull the cursor back into the field in question, or
    the next key (Space on the remember box) goes into the code instead."""
    page = visit.page
    bob_types_a_wrong_code(visit)
    held: list[Any] = []
    page.route("**/static/sso.js", lambda route: held.append(route))
    page.keyboard.press("Enter")
    page.wait_for_selector("#mfa-error")
    cursor_in(page, "code")
    page.keyboard.type(visit.code("bob"))
    assert tab_until(page, "remember-device") == ["remember-device"]
    assert held, "the page's script was not held back"
    for route in held:
        route.continue_()
    page.wait_for_load_state("load")
    assert focused(page)["id"] == "remember-device"
    tick_remember_and_verify(visit)
