"""Two-step verification end to end in Debian's chromium.

The test enrols the way a person does: it photographs the QR code the page shows, decodes it
with a real decoder (zxing-cpp) and computes the codes from the decoded ``otpauth://`` URI,
never from the database.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any
from urllib.parse import urlencode

import pyotp
import pytest
import requests

from tests.browser import Authenticator, read_qr, sign_in_with_password
from tests.conftest import PASSWORD, pkce_pair, query_of

pytestmark = pytest.mark.browser

APP_CALLBACK = "https://payroll.example.com/cb"


class RelyingApp:
    """The app's side: builds authorization requests and redeems codes at the live provider."""

    def __init__(self, provider_url: str, client: Any) -> None:
        self.provider_url = provider_url
        self.client = client
        self.verifier = ""

    def authorize_url(self, **extra: str) -> str:
        self.verifier, challenge = pkce_pair()
        params = {
            "response_type": "code", "client_id": self.client.client_id,
            "redirect_uri": APP_CALLBACK, "scope": "openid profile",
            "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge, "code_challenge_method": "S256", **extra,
        }
        return f"{self.provider_url}/authorize?{urlencode(params)}"

    def id_token_claims(self, callback_url: str) -> dict[str, Any]:
        code = query_of(callback_url)["code"]
        response = requests.post(
            f"{self.provider_url}/token",
            data={"grant_type": "authorization_code", "code": code,
                  "redirect_uri": APP_CALLBACK, "code_verifier": self.verifier},
            auth=(self.client.client_id, self.client.secret), timeout=10,
        )
        assert response.status_code == 200, response.text
        payload = response.json()["id_token"].split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _serve_app_callback(page: Any) -> list[str]:
    """Answer the app's redirect URI inside the browser and note every URL it received."""
    received: list[str] = []

    def handle(route: Any) -> None:
        received.append(route.request.url)
        route.fulfill(status=200, content_type="text/html",
                      body="<!doctype html><title>Payroll</title><p id=app>Payroll</p>")

    page.route(f"{APP_CALLBACK}**", handle)
    return received


def test_enrol_by_qr_sign_in_with_codes_and_step_up(live_provider: Any, browser_page: Any,
                                                    alice: Any, make_client: Any) -> None:
    payroll = make_client("Payroll", redirect_uris=[APP_CALLBACK],
                          policy={"mfa_required": True})
    rp = RelyingApp(live_provider.url, payroll)
    page = browser_page
    received = _serve_app_callback(page)

    # 1. The app requires MFA; alice has none: the flow leads her through enrolment.
    page.goto(rp.authorize_url())
    sign_in_with_password(page, "alice", PASSWORD)
    page.wait_for_url("**/mfa/enrol?**")
    uri = read_qr(page.locator("#mfa-qr svg"))
    parsed = pyotp.parse_uri(uri)
    assert uri.startswith("otpauth://totp/") and parsed.issuer == "Company SSO"
    assert parsed.name == "alice@example.com" and parsed.digits == 6 and parsed.interval == 30
    phone = Authenticator(uri)
    page.fill("#mfa-enrol input[name=code]", phone.code())
    page.click("#mfa-enrol button[type=submit]")
    page.wait_for_selector("#mfa-recovery-codes")
    recovery_codes = page.locator("#mfa-recovery-codes code").all_inner_texts()
    assert len(recovery_codes) == 10
    page.click("#mfa-continue")
    page.wait_for_selector("#app")
    claims = rp.id_token_claims(received[-1])
    assert claims["acr"] == "urn:sso:loa:2" and {"pwd", "otp", "mfa"} <= set(claims["amr"])

    # 2. A new browser session: password, then a recovery code instead of the phone.
    page.context.clear_cookies()
    page.goto(rp.authorize_url())
    sign_in_with_password(page, "alice", PASSWORD)
    page.wait_for_url("**/mfa/verify?**")
    page.fill("#mfa-verify input[name=code]", recovery_codes[0])
    page.click("#mfa-verify button[type=submit]")
    page.wait_for_selector("#app")
    assert "otp" in rp.id_token_claims(received[-1])["amr"]

    # The same recovery code does not work twice.
    page.context.clear_cookies()
    page.goto(rp.authorize_url())
    sign_in_with_password(page, "alice", PASSWORD)
    page.wait_for_url("**/mfa/verify?**")
    page.fill("#mfa-verify input[name=code]", recovery_codes[0])
    page.click("#mfa-verify button[type=submit]")
    assert "already been used" in page.locator("#mfa-error").inner_text()
    page.fill("#mfa-verify input[name=code]", phone.code())
    page.click("#mfa-verify button[type=submit]")
    page.wait_for_selector("#app")

    # 3. The app asks for a fresh sign-in (prompt=login): password and code again.
    page.goto(rp.authorize_url(prompt="login"))
    sign_in_with_password(page, "alice", PASSWORD)
    page.wait_for_url("**/mfa/verify?**")
    page.fill("#mfa-verify input[name=code]", phone.code())
    page.click("#mfa-verify button[type=submit]")
    page.wait_for_selector("#app")
    claims = rp.id_token_claims(received[-1])
    assert claims["acr"] == "urn:sso:loa:2" and "otp" in claims["amr"]

    # 4. The account page shows the authenticator and what is left of the recovery codes.
    page.goto(f"{live_provider.url}/")
    assert "Recovery codes left: 9" in page.locator("#mfa-status").inner_text()
