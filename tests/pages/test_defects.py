"""The defects a person found by looking at every page (issue 16), each checked in Debian's
chromium the way that person would see it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.accounts.helpers import messages
from tests.browser import read_qr
from tests.conftest import PASSWORD
from tests.pages import catalogue
from tests.pages.catalogue import PHONE, Visit, build_world

pytestmark = [pytest.mark.browser,
              pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


@pytest.fixture
def visit(chromium: Any, live_provider: Any) -> Iterator[Visit]:
    one = Visit(chromium, live_provider, build_world(live_provider.app), "en")
    yield one
    one.close()


@pytest.fixture
def zh_visit(chromium: Any, live_provider: Any) -> Iterator[Visit]:
    one = Visit(chromium, live_provider, build_world(live_provider.app), "zh-CN")
    yield one
    one.close()


def box(page: Any, selector: str) -> dict[str, float]:
    return dict(page.locator(selector).bounding_box())


def test_the_remember_box_sits_left_of_its_label_on_one_line(visit: Visit) -> None:
    page = catalogue._mfa_verify(visit)
    for size in (catalogue.DESKTOP, PHONE):
        page.set_viewport_size(size)
        check = box(page, "#remember-device")
        label = box(page, "label.check span")
        assert check["width"] >= 16 and check["height"] >= 16
        assert check["x"] + check["width"] <= label["x"]
        assert abs(check["y"] - label["y"]) < label["height"]


def test_recovery_codes_never_break_and_can_be_copied_downloaded_and_printed(
        visit: Visit) -> None:
    page = catalogue._recovery_codes(visit)
    codes = page.locator("#mfa-recovery-codes code").all_inner_texts()
    assert len(codes) >= 8
    for size in (catalogue.DESKTOP, PHONE):
        page.set_viewport_size(size)
        assert page.locator("#mfa-recovery-codes code").evaluate_all(
            "cs => cs.every(c => c.getClientRects().length === 1)")
        # ... and none runs into its neighbour or out of the list.
        assert page.locator("#mfa-recovery-codes code").evaluate_all("""cs => {
          const list = cs[0].closest('ul').getBoundingClientRect();
          const boxes = cs.map(c => c.getBoundingClientRect());
          return boxes.every((a, i) => a.right <= list.right && boxes.every((b, j) =>
            i === j || a.right <= b.left || b.right <= a.left || a.bottom <= b.top
            || b.bottom <= a.top));
        }""")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.click("#mfa-copy")
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert [line.strip() for line in copied.split("\n") if line.strip()] == codes
    with page.expect_download() as download:
        page.click("#mfa-download")
    saved = Path(download.value.path()).read_text()
    assert all(code in saved for code in codes)
    assert page.locator("#mfa-print").is_visible()
    page.emulate_media(media="print")
    assert page.locator("#mfa-recovery-codes").is_visible()
    assert not page.locator(".tools").is_visible() and not page.locator(".top").is_visible()


def test_the_outbox_fits_its_card_and_shows_what_each_message_says(visit: Visit) -> None:
    page = catalogue._outbox(visit)
    for size in (catalogue.DESKTOP, PHONE):
        page.set_viewport_size(size)
        widths = page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
        assert widths[0] <= widths[1]
        card = box(page, "main")
        for article in page.locator(".outbox-message pre").all():
            assert article.bounding_box()["x"] + article.bounding_box()["width"] <= (
                card["x"] + card["width"])
    text = page.locator("main").inner_text()
    assert "None" not in text
    event = page.locator(".outbox-message[data-purpose=app-activated] pre").inner_text()
    assert '"iss"' in event and "urn:sso:secevent:app-account:activated" in event


@pytest.mark.parametrize(("reach", "expected"), [
    (catalogue._unknown_app, "此服务上不存在该应用（client）。"),
    (catalogue._wrong_redirect, "该应用未登记此回调地址（redirect_uri）。"),
])
def test_chinese_error_pages_translate_the_librarys_words(
        zh_visit: Visit, reach: Any, expected: str) -> None:
    page = reach(zh_visit)
    assert page.locator("#error-description").inner_text() == expected
    assert "错误代码：" in page.locator("main").inner_text()
    assert "错误代码:" not in page.locator("main").inner_text()


def test_an_unknown_library_message_is_never_shown_in_english_to_a_chinese_reader(
        app: Any) -> None:
    from sso.errors import describe_error

    with app.test_request_context("/", headers={"Accept-Language": "zh-CN"}):
        assert describe_error("Something Authlib says one day.") == "请求无效。"
        assert describe_error("Parameter 'scope' is repeated.") == "参数“scope”重复出现。"
        # A page's own message, already translated (sign-out errors), stays as it is.
        assert describe_error("退出登录请求格式错误。") == "退出登录请求格式错误。"
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert describe_error("Something Authlib says one day.") == (
            "Something Authlib says one day.")


def test_the_enrolment_page_says_the_administrator_asks_when_it_is_so(
        visit: Visit, live_provider: Any) -> None:
    """The admin policy (``MFA_REQUIRED_FOR_ADMINS``), not CRM, asks for the second step."""
    from sso.extensions import db
    from sso.users.service import find_by_login

    with live_provider.app.app_context():
        find_by_login("alice").is_admin = True
        db.session.commit()
    visit.authorize("erp")
    visit.sign_in("alice")
    visit.page.wait_for_selector("#mfa-enrol")
    why = visit.page.locator("#mfa-why").inner_text()
    assert why == "Your administrator requires two-step verification for your account."
    assert "ERP" not in why


def test_the_enrolment_page_names_the_app_when_the_app_asks(visit: Visit) -> None:
    page = catalogue._mfa_enrol(visit)
    assert page.locator("#mfa-why").inner_text() == (
        "Payroll asks for a second step when you sign in.")


def test_the_password_rules_show_before_typing_and_the_password_can_be_shown(
        visit: Visit) -> None:
    page = catalogue._change_password(visit)
    rules = page.locator("#password-rules").inner_text()
    for rule in ("At least 10 characters.", "A mix of letters, digits, symbols.",
                 "Not a commonly used password.", "Not one of your last 5 passwords."):
        assert rule in rules
    assert "password-rules" in page.locator("#password-field").get_attribute("aria-describedby")
    page.fill("#password-field", "Secret-42-horse")
    toggle = page.locator("#password-field + button.reveal")
    toggle.click()
    assert page.locator("#password-field").get_attribute("type") == "text"
    assert toggle.get_attribute("aria-pressed") == "true"
    toggle.click()
    assert page.locator("#password-field").get_attribute("type") == "password"


def test_links_take_the_brand_colour_and_the_favicon_exists(visit: Visit) -> None:
    page = catalogue._sign_in(visit)
    colour = page.locator(".account-links a").first.evaluate("a => getComputedStyle(a).color")
    assert colour == "rgb(31, 95, 191)"
    icon = page.locator("link[rel=icon]").get_attribute("href")
    for path in (icon, "/favicon.ico"):
        response = page.request.get(visit.url + path)
        assert response.status == 200 and response.headers["content-type"].startswith("image/")
    assert not visit.failed_parts


def test_the_desktop_code_leaves_the_screen_once_scanned_and_has_a_text_alternative(
        visit: Visit) -> None:
    desktop = catalogue._qr_desktop(visit)
    address = desktop.locator("#qr-link-text")
    desktop.click("#qr-link summary")
    scanned_url = read_qr(desktop.locator("#qr-image"))
    # The same address, to type or copy on the phone; never a link to follow here.
    assert address.input_value() == scanned_url
    assert address.get_attribute("readonly") is not None
    assert desktop.locator(f"a[href='{scanned_url}']").count() == 0
    desktop.context.grant_permissions(["clipboard-read", "clipboard-write"])
    desktop.click("#qr-link-copy")
    assert desktop.evaluate("() => navigator.clipboard.readText()") == scanned_url
    phone = visit.signed_in_page("alice", viewport=PHONE)
    phone.goto(scanned_url)
    phone.wait_for_selector("#qr-approve")
    desktop.wait_for_selector("#qr-scanned:not([hidden])")
    assert not desktop.locator("#qr-image").is_visible()
    assert not desktop.locator("#qr-link").is_visible()
    assert "Scanned" in desktop.locator("#qr-status").inner_text()


def _picture_asked_for_alice(page: Any) -> None:
    """A fresh sign-in page asks for the picture only once it knows the account (the
    challenge counts failures per account, not per office address)."""
    page.fill("#username", "alice")
    page.fill("#password-field", PASSWORD)
    page.click("form#password button[type=submit]")
    page.wait_for_selector("#captcha-field")


def test_the_picture_challenge_can_be_passed_with_a_code_from_ones_own_mail(
        visit: Visit, live_provider: Any) -> None:
    page = catalogue._captcha_alternative(visit)
    # bob asks for a code: it does not open the gate for alice's password.
    page.fill("#login-field", "bob")
    page.click("#captcha-code-form button[type=submit]")
    page.wait_for_selector("#captcha-code-sent")
    page.click("#captcha-back")
    _picture_asked_for_alice(page)
    page.click("#captcha-alternative")
    page.fill("#login-field", "alice")
    page.click("#captcha-code-form button[type=submit]")
    page.wait_for_selector("#captcha-code-sent")
    with live_provider.app.app_context():
        mails = {m.recipient: m for m in messages("bob@example.com", "captcha-code")
                 + messages("alice@example.com", "captcha-code")}
        bob_code = re.search(r"\b(\d{6})\b", mails["bob@example.com"].body_text).group(1)
        alice_code = re.search(r"\b(\d{6})\b", mails["alice@example.com"].body_text).group(1)
    page.click("#captcha-back")
    _picture_asked_for_alice(page)
    page.fill("#username", "alice")
    page.fill("#password-field", PASSWORD)
    page.fill("#captcha-field", bob_code)
    page.click("form#password button[type=submit]")
    page.wait_for_selector("#login-error")
    page.fill("#password-field", PASSWORD)
    page.fill("#captcha-field", alice_code)
    page.click("form#password button[type=submit]")
    page.wait_for_url(f"{catalogue.apps_origin()}/erp/callback**")


def test_form_errors_are_announced_and_tied_to_their_fields(visit: Visit) -> None:
    page = catalogue._change_password_error(visit)
    errors = page.locator("#form-errors")
    assert errors.get_attribute("role") == "alert" and errors.inner_text()
    for field in ("#current-field", "#password-field", "#confirm-field"):
        assert "form-errors" in page.locator(field).get_attribute("aria-describedby")
    assert page.evaluate("() => document.activeElement.id") == "current-field"
