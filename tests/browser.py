"""What the browser tests do the way a person would: read a QR code off the screen, type the
code an authenticator app shows, fill in the sign-in form."""

from __future__ import annotations

import io
import time
from typing import Any

import pyotp
import zxingcpp
from PIL import Image


def read_qr(locator: Any) -> str:
    """Photograph the element and decode the one QR code in it (an ``<img>`` is awaited until
    it has loaded; polling, because CSP refuses the 'unsafe-eval' wait_for_function needs)."""
    if locator.evaluate("el => el.tagName") == "IMG":
        for _ in range(100):
            if locator.evaluate("img => img.complete && img.naturalWidth > 0"):
                break
            locator.page.wait_for_timeout(100)
    shot = locator.screenshot()
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(shot)).convert("L"))
    assert len(results) == 1, "the QR code on the page did not decode"
    return str(results[0].text)


class Authenticator:
    """An authenticator app: shows the code of a time step not used yet, within the window the
    provider accepts; when the next unused step is too far ahead, it waits for the clock."""

    def __init__(self, uri_or_seed: str) -> None:
        self.totp = (pyotp.parse_uri(uri_or_seed) if uri_or_seed.startswith("otpauth://")
                     else pyotp.TOTP(uri_or_seed))
        self.last_step = -1

    def code(self) -> str:
        step = max(self.last_step + 1, int(time.time()) // 30)
        while step > int(time.time()) // 30 + 1:
            time.sleep(1)
        self.last_step = step
        return str(self.totp.at(step * 30))


def sign_in_with_password(page: Any, username: str, password: str) -> None:
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("form#password button[type=submit]")
