"""What the browser tests do the way a person would: read a QR code off the screen, type the
code an authenticator app shows, fill in the sign-in form."""

from __future__ import annotations

import base64
import io
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import pyotp
import requests
import zxingcpp
from PIL import Image

from tests.conftest import pkce_pair, query_of


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


class RelyingApp:
    """An app that signs its users in through the live provider, the way a real one does:
    it sends the browser to ``/authorize`` and redeems the code that comes back at its
    redirect URI, a real HTTP server on another port (another origin, so the provider's CSP
    ``form-action`` is exercised as a browser applies it). ``received`` holds every URL the
    app was sent to."""

    PAGE = b"<!doctype html><title>App</title><p id=app>App</p>"

    def __init__(self, provider_url: str, client: Any, callback: str) -> None:
        self.provider_url = provider_url
        self.client = client
        self.callback = callback
        self.verifier = ""
        self.received: list[str] = []

    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/favicon.ico":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b""]
        query = environ.get("QUERY_STRING", "")
        self.received.append(f"{self.origin}{environ['PATH_INFO']}" + (f"?{query}" if query
                                                                       else ""))
        start_response("200 OK", [("Content-Type", "text/html")])
        return [self.PAGE]

    @property
    def origin(self) -> str:
        return "/".join(self.callback.split("/")[:3])

    def authorize_url(self, **extra: str) -> str:
        self.verifier, challenge = pkce_pair()
        params = {
            "response_type": "code", "client_id": self.client.client_id,
            "redirect_uri": self.callback, "scope": "openid profile",
            "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge, "code_challenge_method": "S256", **extra,
        }
        return f"{self.provider_url}/authorize?{urlencode(params)}"

    def landed(self, page: Any) -> dict[str, str]:
        """Wait until the browser is back at the app; return what the app received."""
        page.wait_for_selector("#app")
        return query_of(page.url)

    def tokens(self, answer: dict[str, str]) -> dict[str, Any]:
        """Redeem the code the app received, as its back end does."""
        response = requests.post(
            f"{self.provider_url}/token",
            data={"grant_type": "authorization_code", "code": answer["code"],
                  "redirect_uri": self.callback, "code_verifier": self.verifier},
            auth=(self.client.client_id, self.client.secret), timeout=10,
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def id_token_claims(self, answer: dict[str, str]) -> dict[str, Any]:
        payload = self.tokens(answer)["id_token"].split(".")[1]
        return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
