"""Two browsers through the test client: a desktop that shows a code, a phone that scans it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import PASSWORD, Flow, csrf_of, query_of

PHONE_UA = ("Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0 Mobile Safari/537.36")
DESKTOP_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0 Safari/537.36")


@dataclass
class Desktop:
    http: FlaskClient
    flow: Flow
    flow_id: str = ""
    csrf: str = ""
    code: dict[str, Any] | None = None

    def start(self, **overrides: Any) -> dict[str, Any]:
        """Begin an authorization request and make a QR code on the QR tab."""
        self.flow.params = self.flow.authorize_params(**overrides)
        response = self.http.get("/authorize", query_string=self.flow.params)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
        self.flow_id = query_of(response.headers["Location"])["flow"]
        return self.new_code()

    def new_code(self) -> dict[str, Any]:
        page = self.http.get(f"/qr/login?flow={self.flow_id}" if self.flow_id else "/qr/login")
        assert page.status_code == 200
        self.csrf = csrf_of(page.get_data(as_text=True))
        response = self.http.post("/qr/sessions", data={"flow": self.flow_id},
                                  headers={"X-CSRF-Token": self.csrf,
                                           "User-Agent": DESKTOP_UA})
        assert response.status_code == 201, response.get_data(as_text=True)
        self.code = response.get_json()
        return self.code

    def complete(self, qr_id: str | None = None, decision: str = "continue") -> Any:
        """Post the completion as the desktop page does, with the page's current CSRF token
        (a sign-in rotates it, so a second attempt reads the page again), and the answer to
        "Signed in as ..., continue?" (``decision``: continue, not_me, or "" to be asked)."""
        qr_id = qr_id or self.code["id"]  # type: ignore[index]
        page = self.http.get(f"/qr/login?flow={self.flow_id}" if self.flow_id else "/qr/login")
        if page.status_code == 200:
            self.csrf = csrf_of(page.get_data(as_text=True))
        return self.http.post(f"/qr/sessions/{qr_id}/complete",
                              data={"csrf_token": self.csrf, "flow": self.flow_id,
                                    "decision": decision})

    def follow_to_app(self, response: Any) -> dict[str, str]:
        for _ in range(5):
            assert response.status_code == 302, response.get_data(as_text=True)[:400]
            location = response.headers["Location"]
            if location.startswith(self.flow.params["redirect_uri"]):
                return query_of(location)
            response = self.http.get(location)
        raise AssertionError("never came back to the app")


@dataclass
class Phone:
    http: FlaskClient

    def sign_in(self, username: str = "alice") -> None:
        response = Flow(self.http, None).login(username, PASSWORD)
        assert response.status_code == 302

    def open(self, qr_id: str) -> Any:
        return self.http.get(f"/qr/s/{qr_id}", headers={"User-Agent": PHONE_UA})

    def approve(self, qr_id: str, number: int | None = None) -> Any:
        page = self.open(qr_id)
        assert page.status_code == 200, page.get_data(as_text=True)[:400]
        data: dict[str, Any] = {"csrf_token": csrf_of(page.get_data(as_text=True))}
        if number is not None:
            data["number"] = number
        return self.http.post(f"/qr/s/{qr_id}/approve", data=data,
                              headers={"User-Agent": PHONE_UA})

    def deny(self, qr_id: str) -> Any:
        page = self.open(qr_id)
        return self.http.post(f"/qr/s/{qr_id}/deny",
                              data={"csrf_token": csrf_of(page.get_data(as_text=True))})


@pytest.fixture
def desktop(app: Any, erp: Any, alice: Any) -> Desktop:
    http = app.test_client()
    http.environ_base["HTTP_USER_AGENT"] = DESKTOP_UA
    return Desktop(http, Flow(http, erp))


@pytest.fixture
def phone(app: Any, alice: Any) -> Iterator[Phone]:
    """A signed-in phone on the office network: the desktop (127.0.0.1) and the phone
    (10.0.0.7) are both inside the company's networks, so they count as near each other."""
    http = app.test_client()
    http.environ_base["HTTP_USER_AGENT"] = PHONE_UA
    http.environ_base["REMOTE_ADDR"] = "10.0.0.7"
    signed_in = Phone(http)
    signed_in.sign_in()
    previous = app.config["QR_TRUSTED_NETWORKS"]
    app.config["QR_TRUSTED_NETWORKS"] = "10.0.0.0/8, 127.0.0.0/8"
    yield signed_in
    app.config["QR_TRUSTED_NETWORKS"] = previous
