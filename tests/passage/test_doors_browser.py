"""Every door of the sign-in passage, walked in Chromium to the relying app.

Each test starts where a person starts (the app sends the browser to ``/authorize``), goes
through one sign-in page and its exit (``finish`` or ``abort``) under the page's real CSP and
cookies, and ends at the app's redirect URI with a code (or the app's error). Each names the
doors and steps it walks (``pytest.mark.door`` / ``pytest.mark.step``);
``test_every_door_is_walked.py`` fails when a door or step in the code has no such test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from sso.accounts import lifecycle
from tests.accounts.helpers import in_app, last_code
from tests.browser import Authenticator, RelyingApp, read_qr, sign_in_with_password
from tests.conftest import PASSWORD, LiveProvider, free_port, serve_in_thread

pytestmark = pytest.mark.browser

NEW_PASSWORD = "Fresh-Lantern-42"


@pytest.fixture
def make_app(make_client: Any, live_provider: LiveProvider) -> Iterator[Any]:
    """An app registered with a sign-in policy, serving its redirect URI on a port of its
    own."""
    servers: list[Any] = []

    def make(name: str = "App", **kwargs: Any) -> RelyingApp:
        origin = f"http://127.0.0.1:{free_port()}"
        kwargs.setdefault("post_logout_redirect_uris", [f"{origin}/bye"])
        client = make_client(name, [f"{origin}/cb"], **kwargs)
        app = RelyingApp(live_provider.url, client, f"{origin}/cb")
        servers.append(serve_in_thread(app, int(origin.rsplit(":", 1)[1])))
        return app

    yield make
    for server in servers:
        server.shutdown()


def _enrol(live: LiveProvider, username: str) -> Authenticator:
    """An authenticator app enrolled through the service (its code for a past step)."""
    from datetime import timedelta

    import pyotp

    from sso.dbtypes import utcnow
    from sso.mfa import service
    from sso.users.service import find_by_login

    def enrol() -> str:
        user = find_by_login(username)
        enrolment = service.begin_enrolment(user)
        past = utcnow() - timedelta(seconds=90)
        service.confirm_enrolment(user, enrolment.id, pyotp.TOTP(enrolment.seed).at(past),
                                  origin=None, now=past)
        return str(enrolment.seed)

    return Authenticator(in_app(live.app, enrol))


@pytest.mark.door("password")
@pytest.mark.step("identify", "consent", "activation")
def test_password(browser_page: Any, make_app: Any, alice: Any) -> None:
    page = browser_page
    rp = make_app()
    page.goto(rp.authorize_url())
    sign_in_with_password(page, "alice", PASSWORD)
    answer = rp.landed(page)
    assert rp.id_token_claims(answer)["amr"] == ["pwd"]


@pytest.mark.door("cancel")
def test_cancel_on_the_sign_in_page(browser_page: Any, make_app: Any, alice: Any) -> None:
    page = browser_page
    rp = make_app()
    page.goto(rp.authorize_url())
    page.click("text=Cancel and return to the application")
    assert rp.landed(page)["error"] == "access_denied"


@pytest.mark.door("password-change")
@pytest.mark.step("password_change")
def test_forced_password_change(browser_page: Any, make_app: Any, make_user: Any) -> None:
    """The first dead end of issue 9: the redirect on to the app after the change was blocked
    by the page's own ``form-action 'self'``."""
    make_user("trainee", must_change=True)
    page = browser_page
    rp = make_app()
    page.goto(rp.authorize_url())
    sign_in_with_password(page, "trainee", PASSWORD)
    page.wait_for_url("**/password/change?**")
    page.fill("input[name=current]", PASSWORD)
    page.fill("input[name=password]", NEW_PASSWORD)
    page.fill("input[name=confirm]", NEW_PASSWORD)
    page.click("#change-password button[type=submit]")
    assert "code" in rp.landed(page)


@pytest.mark.door("activation-code")
def test_activation_with_an_sms_code_from_the_sign_in_page(
        app: Any, browser_page: Any, make_app: Any) -> None:
    """The second dead end of issue 9: activating with an SMS code from the sign-in page."""
    in_app(app, lambda: lifecycle.invite("bob", phone="+8613800000002", channel="sms"))
    page = browser_page
    rp = make_app()
    page.goto(rp.authorize_url())
    page.click("text=Activate with a code")
    page.wait_for_url("**/activate/code?**")
    with app.app_context():
        code = last_code("+8613800000002", "activation_code")
    page.fill("input[name=login]", "+8613800000002")
    page.fill("input[name=code]", code)
    page.fill("input[name=password]", NEW_PASSWORD)
    page.fill("input[name=confirm]", NEW_PASSWORD)
    page.click("#code-form button[type=submit]")
    answer = rp.landed(page)
    assert rp.id_token_claims(answer)["amr"] == ["pwd"]


@pytest.mark.door("activation-link")
def test_activation_with_the_emailed_link(app: Any, live_provider: LiveProvider,
                                          browser_page: Any, make_app: Any) -> None:
    """The link from the mail opens outside any app's request: the user lands on the account
    page, signed in, and the app then signs them in without asking again."""
    from tests.accounts.helpers import last_link

    in_app(app, lambda: lifecycle.invite("bob", email="bob@example.com"))
    with app.app_context():
        link = last_link("bob@example.com", "activation")
    page = browser_page
    rp = make_app()
    page.goto(live_provider.url + "/" + link.split("/", 3)[3])
    page.fill("input[name=password]", NEW_PASSWORD)
    page.fill("input[name=confirm]", NEW_PASSWORD)
    page.click("#set-password button[type=submit]")
    page.wait_for_url(f"{live_provider.url}/")
    page.goto(rp.authorize_url())
    assert "code" in rp.landed(page)


@pytest.mark.door("totp")
@pytest.mark.step("mfa")
def test_second_factor_code(live_provider: LiveProvider, browser_page: Any, make_app: Any,
                            alice: Any) -> None:
    authenticator = _enrol(live_provider, "alice")
    page = browser_page
    rp = make_app(policy={"mfa_required": True})
    page.goto(rp.authorize_url())
    sign_in_with_password(page, "alice", PASSWORD)
    page.wait_for_url("**/mfa/verify?**")
    page.fill("#mfa-verify input[name=code]", authenticator.code())
    page.click("#mfa-verify button[type=submit]")
    claims = rp.id_token_claims(rp.landed(page))
    assert claims["acr"] == "urn:sso:loa:2" and claims["amr"] == ["pwd", "otp", "mfa"]


@pytest.mark.door("recovery-code")
def test_recovery_code(app: Any, live_provider: LiveProvider, browser_page: Any,
                       make_app: Any, alice: Any) -> None:
    from sso.dbtypes import utcnow
    from sso.mfa import service
    from sso.users.service import find_by_login

    _enrol(live_provider, "alice")
    codes = in_app(app, lambda: service.regenerate_recovery_codes(
        find_by_login("alice"), origin=None, now=utcnow()))
    page = browser_page
    rp = make_app(policy={"mfa_required": True})
    page.goto(rp.authorize_url())
    sign_in_with_password(page, "alice", PASSWORD)
    page.wait_for_url("**/mfa/verify?**")
    page.fill("#mfa-verify input[name=code]", codes[0])
    page.click("#mfa-verify button[type=submit]")
    assert "otp" in rp.id_token_claims(rp.landed(page))["amr"]


@pytest.mark.door("remembered-device")
def test_remembered_device(live_provider: LiveProvider, browser_page: Any, make_app: Any,
                           alice: Any) -> None:
    authenticator = _enrol(live_provider, "alice")
    page = browser_page
    rp = make_app(policy={"mfa_required": True})
    page.goto(rp.authorize_url())
    sign_in_with_password(page, "alice", PASSWORD)
    page.wait_for_url("**/mfa/verify?**")
    page.fill("#mfa-verify input[name=code]", authenticator.code())
    page.check("#remember-device")
    page.click("#mfa-verify button[type=submit]")
    rp.landed(page)
    # Signed out (the SSO session cookie gone), the remembered browser skips the code.
    cookies = [c for c in page.context.cookies() if "sso_session" not in c["name"]]
    page.context.clear_cookies()
    page.context.add_cookies(cookies)
    page.goto(rp.authorize_url())
    sign_in_with_password(page, "alice", PASSWORD)
    answer = rp.landed(page)
    assert "code" in answer and len(rp.received) == 2


@pytest.mark.door("mfa-enrol")
def test_enrolment_inside_the_sign_in(browser_page: Any, make_app: Any, alice: Any) -> None:
    page = browser_page
    rp = make_app(policy={"mfa_required": True})
    page.goto(rp.authorize_url())
    sign_in_with_password(page, "alice", PASSWORD)
    page.wait_for_url("**/mfa/enrol?**")
    phone = Authenticator(read_qr(page.locator("#mfa-qr svg")))
    page.fill("#mfa-enrol input[name=code]", phone.code())
    page.click("#mfa-enrol button[type=submit]")
    page.wait_for_selector("#mfa-recovery-codes")
    page.click("#mfa-continue")
    assert rp.id_token_claims(rp.landed(page))["acr"] == "urn:sso:loa:2"


@pytest.mark.door("qr-desktop", "password")
def test_scan_to_sign_in(chromium: Any, phone_device: dict[str, Any],
                         live_provider: LiveProvider, make_app: Any, alice: Any) -> None:
    """The desktop's completion, and the phone's own sign-in (password, back to the code)."""
    desktop_context = chromium.new_context(locale="en-US")
    phone_context = chromium.new_context(**phone_device, locale="en-US")
    try:
        desktop = desktop_context.new_page()
        desktop.set_default_timeout(15_000)
        rp = make_app()
        desktop.goto(rp.authorize_url())
        desktop.get_by_role("link", name="Scan to sign in").click()
        desktop.locator("#qr-status", has_text="Scan this code").wait_for()
        scanned = read_qr(desktop.locator("#qr-image"))

        phone = phone_context.new_page()
        phone.set_default_timeout(15_000)
        phone.goto(scanned)
        phone.wait_for_url("**/login?next=**")
        assert phone.get_by_role("link", name="Scan to sign in").count() == 0
        sign_in_with_password(phone, "alice", PASSWORD)
        phone.wait_for_url(scanned)
        phone.click("#qr-confirm")
        phone.locator("#qr-message", has_text="signed in on your computer").wait_for()

        desktop.click("#qr-continue")  # "Signed in as alice, continue?"
        claims = rp.id_token_claims(rp.landed(desktop))
        assert claims["amr"] == ["qr"]
    finally:
        desktop_context.close()
        phone_context.close()


@pytest.mark.door("consent", "consent-deny")
@pytest.mark.step("consent")
def test_consent_allow_and_deny(browser_page: Any, make_app: Any, alice: Any) -> None:
    page = browser_page
    rp = make_app(name="Partner Portal", first_party=False)
    page.goto(rp.authorize_url())
    sign_in_with_password(page, "alice", PASSWORD)
    page.wait_for_url("**/consent?**")
    page.click("button[value=deny]")
    assert rp.landed(page)["error"] == "access_denied"
    page.goto(rp.authorize_url())
    page.wait_for_url("**/consent?**")
    page.click("button[value=allow]")
    assert "code" in rp.landed(page)


@pytest.mark.door("activation-decided", "activation-wait-cancel")
@pytest.mark.step("activation")
def test_waiting_for_approval(app: Any, browser_page: Any, make_app: Any, alice: Any) -> None:
    from sso.apps import service
    from sso.oidc.clients import get
    from sso.users.service import find_by_login

    page = browser_page
    rp = make_app(policy={"activation": "approval"})
    page.goto(rp.authorize_url())
    sign_in_with_password(page, "alice", PASSWORD)
    page.wait_for_url("**/apps/waiting?**")
    page.click("text=Back to App")
    assert rp.landed(page)["error"] == "access_denied"

    page.goto(rp.authorize_url())
    page.wait_for_url("**/apps/waiting?**")
    in_app(app, lambda: service.approve(find_by_login("alice"), get(rp.client.client_id),
                                        actor="test"))
    page.click("text=Check again")
    assert "code" in rp.landed(page)


@pytest.mark.door("activation-refused")
def test_refused_access(browser_page: Any, make_app: Any, alice: Any) -> None:
    page = browser_page
    rp = make_app(policy={"activation": "invite"})
    page.goto(rp.authorize_url())
    sign_in_with_password(page, "alice", PASSWORD)
    page.wait_for_url("**/apps/refused?**")
    page.click("text=Back to App")
    answer = rp.landed(page)
    assert answer["error"] == "access_denied"


@pytest.mark.door("logout")
def test_logout_confirmation(live_provider: LiveProvider, browser_page: Any, make_app: Any,
                             alice: Any) -> None:
    """RP-initiated logout without a hint asks first; the confirmation's form then goes on to
    the app's registered post-logout URI (another origin: the page's CSP must allow it)."""
    from urllib.parse import urlencode

    page = browser_page
    rp = make_app()
    page.goto(rp.authorize_url())
    sign_in_with_password(page, "alice", PASSWORD)
    rp.landed(page)
    page.goto(f"{live_provider.url}/logout?" + urlencode({
        "client_id": rp.client.client_id, "state": "s1",
        "post_logout_redirect_uri": f"{rp.origin}/bye"}))
    page.click("form.choices button[type=submit]")
    page.wait_for_selector("#app")
    assert re.search(r"/bye\?state=s1$", rp.received[-1])
    assert not [c for c in page.context.cookies() if "sso_session" in c["name"]]
