"""Issue 3 end to end, in chromium against the demo ERP as the demo configures it: an admin
invites a new employee (``sso users invite``), the activation link arrives in the outbox, the
employee sets a password, signs into ERP (which requires MFA: enrolment by photographing the QR
code), and ERP's account is activated through the SSO: the app-account row is active, the
demo ERP received the signed event and created its local record before the user landed, and
the ID token the app received carries the ERP roles."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sso.cli import cli
from tests.accounts.helpers import last_link
from tests.browser import Authenticator, read_qr
from tests.conftest import LiveProvider
from tests.e2e.conftest import DemoERP

pytestmark = pytest.mark.browser
NEW_PASSWORD = "Fresh-Lantern-42!"


def _admin(live: LiveProvider, *args: str) -> str:
    result = live.app.test_cli_runner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return str(result.output)


def test_invited_employee_activates_and_lands_in_erp_with_roles(
        live_provider: LiveProvider, demo_erp: DemoERP, browser_page: Any) -> None:
    from sso.apps.service import find
    from sso.users.service import find_by_login

    # The admin invites and grants the ERP role (CLI; the admin console reuses the services).
    _admin(live_provider, "users", "invite", "--username", "newhire",
           "--email", "newhire@example.com", "--name", "New Hire")
    _admin(live_provider, "roles", "grant", "newhire", "erp", "accountant")
    with live_provider.app.app_context():
        link = last_link("newhire@example.com", "activation")
    assert link.startswith(f"{live_provider.url}/activate/")

    # The employee opens the mail's link and chooses a password: the account is active.
    page = browser_page
    page.goto(link)
    page.fill("input[name=password]", NEW_PASSWORD)
    page.fill("input[name=confirm]", NEW_PASSWORD)
    page.click("#set-password button[type=submit]")
    page.wait_for_url(f"{live_provider.url}/")
    assert demo_erp.local_accounts() == []

    # ERP: the provider's session is there, but ERP requires MFA: enrol in the same flow.
    page.goto(demo_erp.url)
    page.click("#sign-in")
    page.wait_for_url("**/mfa/enrol?**")
    authenticator = Authenticator(read_qr(page.locator("#mfa-qr svg")))
    page.fill("#mfa-enrol input[name=code]", authenticator.code())
    page.click("#mfa-enrol button[type=submit]")
    page.wait_for_selector("#mfa-recovery-codes")
    page.click("#mfa-continue")
    page.wait_for_url(f"{demo_erp.url}/")

    assert page.text_content("#username") == "newhire"
    assert page.locator("#roles span").all_text_contents() == ["accountant"]
    methods = page.text_content("#amr").split(" (")[0].split(", ")
    assert {"pwd", "otp", "mfa"} <= set(methods)

    # The app account is active, and ERP heard of it through a verified SET.
    with live_provider.app.app_context():
        user = find_by_login("newhire")
        account = find(user.id, "erp")
        assert account is not None and account.status == "active"
        assert account.activated_at is not None
        subject = user.subject
    [record] = demo_erp.local_accounts()
    assert record["sub"] == subject and record["username"] == "newhire"
    assert record["status"] == "active" and record["via"] == "auto"
    assert record["roles"] == ["accountant"]
    row = page.locator(f"#provisioned tr[data-sub='{subject}']")
    assert re.search(r"\bactive\b", row.locator(".status").inner_text())

    # The ID token the app received (verified against the JWKS) carries the roles.
    claims = demo_erp.id_token_claims(page.context, live_provider.url)
    assert claims["sub"] == subject and claims["aud"] == "erp"
    assert claims["roles"] == ["accountant"]
    assert claims["acr"] == "urn:sso:loa:2"
