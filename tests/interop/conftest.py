"""Fixtures for the interoperability tests: demo apps seeded on free ports, and an HTTP
"browser" that follows the provider's pages and posts its sign-in form."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import pytest
import requests

from sso.demo.seed import DEMO_APPS, DEMO_PASSWORD, seed
from tests.conftest import LiveProvider, free_port


@dataclass
class SeededApp:
    """A demo app registered at the live provider, listening (if served) on ``url``."""

    client_id: str
    secret: str
    url: str

    @property
    def redirect_uri(self) -> str:
        return f"{self.url}/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        return f"{self.url}/"


def seed_demo_app(live: LiveProvider, index: int = 0) -> SeededApp:
    """Seed the demo users and DEMO_APPS[index] on a free port (through the seed service).

    The app gets no sign-in policy (``policy``), whatever the demo configures, so these
    tests see the plain password sign-in."""
    port = free_port()
    demo_app = {**DEMO_APPS[index], "port": port, "policy": {}}
    with live.app.app_context():
        secrets = seed(live.app.instance_path, apps=[demo_app])
    return SeededApp(demo_app["client_id"], secrets[demo_app["client_id"]],
                     f"http://127.0.0.1:{port}")


@pytest.fixture
def erp_app(live_provider: LiveProvider) -> SeededApp:
    return seed_demo_app(live_provider, 0)


class _Forms(HTMLParser):
    """The forms of a page: action and hidden fields."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"id": values.get("id"), "action": values.get("action", ""),
                               "fields": {}})
        elif tag == "input" and self.forms and values.get("type") == "hidden":
            self.forms[-1]["fields"][values.get("name", "")] = values.get("value", "")


def sign_in_form(html: str) -> dict[str, Any]:
    parser = _Forms()
    parser.feed(html)
    for form in parser.forms:
        if form["id"] == "password":
            return form
    raise AssertionError("no sign-in form on the page:\n" + html[:800])


def browse_until(http: requests.Session, url: str, stop_prefix: str, username: str = "alice",
                 password: str = DEMO_PASSWORD, method: str = "GET") -> str:
    """Act as a browser from ``url``: follow redirects, sign in when the sign-in page shows,
    and return the first URL that starts with ``stop_prefix`` (not fetched)."""
    response = http.request(method, url, allow_redirects=False)
    for _ in range(12):
        if response.is_redirect:
            url = urljoin(response.url, response.headers["Location"])
            if url.startswith(stop_prefix):
                return url
            response = http.get(url, allow_redirects=False)
            continue
        assert response.status_code == 200, f"{response.status_code} at {response.url}"
        form = sign_in_form(response.text)
        data = {**form["fields"], "username": username, "password": password}
        response = http.post(urljoin(response.url, form["action"]), data=data,
                             allow_redirects=False)
    raise AssertionError("the provider never sent the browser back to the app")


def require_interop(what: str) -> None:
    """Skip (or, with SSO_TEST_REQUIRE_INTEROP=1 as in CI, fail) for a missing tool."""
    if os.environ.get("SSO_TEST_REQUIRE_INTEROP") == "1":
        pytest.fail(f"{what} is missing (SSO_TEST_REQUIRE_INTEROP=1)")
    pytest.skip(f"{what} is missing")


@pytest.fixture
def metadata(live_provider: LiveProvider) -> Iterator[dict[str, Any]]:
    yield requests.get(f"{live_provider.url}/.well-known/openid-configuration", timeout=10).json()
