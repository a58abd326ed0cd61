"""Issue 5 end to end against the demo ERP (which requires MFA): the desktop starts at ERP and
picks "Scan to sign in"; a phone (mobile emulation, its own session, signed in with a password)
photographs the code, is asked for its second factor because ERP requires one (the mfa page
with ``next`` back to the code), confirms, and the desktop lands in ERP signed in as the phone's
user, with ``qr`` and the phone's second factor in ``amr``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pyotp
import pytest

from sso.demo.seed import DEMO_PASSWORD
from tests.browser import Authenticator, read_qr, sign_in_with_password
from tests.conftest import LiveProvider
from tests.e2e.conftest import DemoERP, answer_mfa_if_asked

pytestmark = pytest.mark.browser


def _enrol(live: LiveProvider, username: str) -> str:
    """Enrol through the service, confirmed with a code of a past step; return the seed."""
    from sso.dbtypes import utcnow
    from sso.extensions import db
    from sso.mfa import service
    from sso.users.service import find_by_login

    with live.app.app_context():
        user = find_by_login(username)
        enrolment = service.begin_enrolment(user)
        past = utcnow() - timedelta(seconds=90)
        service.confirm_enrolment(user, enrolment.id, pyotp.TOTP(enrolment.seed).at(past),
                                  origin=None, now=past)
        db.session.commit()
        return str(enrolment.seed)


def test_phone_approves_and_the_desktop_lands_in_the_demo_erp(
        chromium: Any, phone_device: dict[str, Any], live_provider: LiveProvider,
        demo_erp: DemoERP) -> None:
    authenticator = Authenticator(_enrol(live_provider, "alice"))
    desktop_context = chromium.new_context(locale="en-US")
    phone_context = chromium.new_context(**phone_device, locale="en-US")
    try:
        desktop = desktop_context.new_page()
        desktop.set_default_timeout(15_000)
        desktop.goto(demo_erp.url)
        desktop.click("#sign-in")
        desktop.wait_for_url(f"{live_provider.url}/login?**")
        desktop.get_by_role("link", name="Scan to sign in").click()
        desktop.locator("#qr-status", has_text="Scan this code").wait_for()
        scanned_url = read_qr(desktop.locator("#qr-image"))
        assert scanned_url.startswith(f"{live_provider.url}/qr/s/")

        # The phone has its own session: password only (no app asked it for more).
        phone = phone_context.new_page()
        phone.set_default_timeout(15_000)
        phone.goto(f"{live_provider.url}/login")
        sign_in_with_password(phone, "alice", DEMO_PASSWORD)
        phone.wait_for_url(f"{live_provider.url}/")

        # Scanning: ERP requires MFA, so a phone session without a second factor steps up
        # first and comes back to the code.
        phone.goto(scanned_url)
        phone.wait_for_url("**/mfa/verify?**")
        assert answer_mfa_if_asked(phone, authenticator)
        phone.wait_for_url(scanned_url)
        assert phone.locator("#qr-app").inner_text() == "ERP"
        desktop.locator("#qr-status", has_text="Confirm the sign-in on your phone").wait_for()
        phone.click("#qr-confirm")
        phone.locator("#qr-message", has_text="signed in on your computer").wait_for()

        desktop.click("#qr-continue")  # "Signed in as alice, continue?"
        desktop.wait_for_url(f"{demo_erp.url}/")
        assert desktop.text_content("#username") == "alice"
        assert sorted(desktop.locator("#roles span").all_text_contents()) == [
            "accountant", "approver"]
        methods = set(desktop.text_content("#amr").split(" (")[0].split(", "))
        assert {"qr", "otp"} <= methods and "pwd" not in methods
        claims = demo_erp.id_token_claims(desktop_context, live_provider.url)
        assert claims["acr"] == "urn:sso:loa:2" and "qr" in claims["amr"]
    finally:
        desktop_context.close()
        phone_context.close()
