"""The demo app answers bad callbacks, forged sign-outs and an unreachable provider with a
readable page, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from sso.demo.app import create_demo_app
from tests.conftest import free_port


@pytest.fixture
def demo() -> Any:
    """A demo app whose provider does not answer (nothing listens on its port)."""
    port = free_port()
    app = create_demo_app("CRM", port, f"http://127.0.0.1:{free_port()}", "crm", "secret")
    return _At(app.test_client(), f"http://127.0.0.1:{port}")


class _At:
    """A test client whose requests go to ``base_url`` unless told otherwise."""

    def __init__(self, client: Any, base_url: str) -> None:
        self.client, self.base_url = client, base_url

    def get(self, path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("base_url", self.base_url)
        return self.client.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("base_url", self.base_url)
        return self.client.post(path, **kwargs)


def test_home_page_offers_sign_in_in_both_languages(demo: Any) -> None:
    english = demo.get("/", headers={"Accept-Language": "en-US"}).get_data(as_text=True)
    assert "Sign in with the company account" in english
    chinese = demo.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_data(as_text=True)
    assert "使用企业账号登录" in chinese and "客户关系管理" in chinese


@pytest.mark.parametrize("query", [
    "",
    "?code=abc&state=forged",
    "?error=access_denied&error_description=The+user+declined.&state=x",
    "?code=abc&state=a&state=b",
])
def test_a_callback_this_browser_did_not_start_is_refused(demo: Any, query: str) -> None:
    response = demo.get(f"/callback{query}")
    assert response.status_code == 400
    assert "Sign-in did not complete." in response.get_data(as_text=True)


def test_sign_out_needs_the_pages_csrf_token(demo: Any) -> None:
    assert demo.post("/logout").status_code == 400
    assert demo.post("/logout", data={"csrf": "forged"}).status_code == 400


def test_a_sign_out_response_with_an_unknown_state_changes_nothing(demo: Any) -> None:
    page = demo.get("/?state=forged").get_data(as_text=True)
    assert "does not belong to this browser" in page


def test_an_unreachable_provider_gets_a_readable_page(demo: Any) -> None:
    response = demo.get("/login")
    assert response.status_code == 502
    assert "cannot be reached" in response.get_data(as_text=True)


def test_visitors_on_another_host_name_are_sent_to_the_registered_address(demo: Any) -> None:
    response = demo.get("/login", base_url="http://localhost:1234")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("http://127.0.0.1:")
    assert response.headers["Location"].endswith("/login")
