"""The demo's CIBA client end to end: the operator of the demo CRM's call-centre page asks for
a caller by username with a binding message; the CRM (registered by the demo seed as a
confidential poll-mode CIBA client) waits and polls; the caller, signed in on the phone's
"Sign-in requests" page, sees the CRM and the message and approves, and the call-centre page
shows the caller's ID token claims verified against the JWKS. A denial shows access_denied."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sso.demo.app import create_demo_app
from sso.demo.seed import DEMO_APPS, DEMO_PASSWORD, DEMO_USERS, seed
from tests.browser import sign_in_with_password
from tests.conftest import LiveProvider, free_port, serve_in_thread

pytestmark = pytest.mark.browser

CRM = next(a for a in DEMO_APPS if a["client_id"] == "crm")


@dataclass
class DemoCRM:
    url: str
    #: The demo app itself (a Flask app): the CIBA requests it waits for.
    rp: Any

    def pending_auth_req_ids(self) -> list[str]:
        store = self.rp.extensions["demo_ciba_requests"]
        return [item["auth_req_id"] for item in store._items.values()]


@pytest.fixture
def demo_crm(live_provider: LiveProvider) -> Iterator[DemoCRM]:
    """The demo CRM as the demo seed registers it (also a poll-mode CIBA client), seeded
    twice (the seed is idempotent), on a free port."""
    assert CRM["ciba"] == "poll"
    port = free_port()
    demo_app = {**CRM, "port": port}
    with live_provider.app.app_context():
        first = seed(live_provider.app.instance_path, apps=[demo_app], users=DEMO_USERS)
        secrets = seed(live_provider.app.instance_path, apps=[demo_app], users=DEMO_USERS)
        assert secrets == first
        from sso.oidc.clients import get

        crm = get("crm")
        assert crm.ciba_mode == "poll"
        assert crm.grant_types == ["authorization_code", "refresh_token",
                                   "urn:openid:params:grant-type:ciba"]
    rp = create_demo_app("CRM", port, live_provider.url, "crm", secrets["crm"], ciba=True)
    server = serve_in_thread(rp, port)
    yield DemoCRM(f"http://127.0.0.1:{port}", rp)
    server.shutdown()


def _ask(operator: Any, crm_url: str, username: str, message: str) -> None:
    operator.goto(crm_url)
    operator.click("#nav-call-centre")
    operator.fill("#ciba-username", username)
    operator.fill("#ciba-message", message)
    operator.click("#ciba-send")
    operator.locator("#ciba-waiting").wait_for()
    assert operator.text_content("#ciba-message") == message


def _phone_answers(phone: Any, provider_url: str, message: str, button: str) -> None:
    phone.goto(f"{provider_url}/qr/requests")
    phone.locator("a.ciba-request", has_text=f"CRM: {message}").click()
    assert phone.text_content("#ciba-binding") == message
    phone.click(button)


@pytest.fixture
def contexts(chromium: Any, phone_device: dict[str, Any], live_provider: LiveProvider,
             demo_crm: DemoCRM) -> Iterator[tuple[Any, Any]]:
    """The operator's desktop (signed in to CRM as the sales user: only operators may ask)
    and the caller's phone (signed in to the provider as alice), one page each."""
    operator_context = chromium.new_context(locale="en-US")
    phone_context = chromium.new_context(**phone_device, locale="en-US")
    try:
        operator = operator_context.new_page()
        operator.set_default_timeout(30_000)
        operator.goto(f"{demo_crm.url}/call-centre")
        assert operator.locator("#ciba-form").count() == 0  # signed out: no form
        operator.click("#sign-in")
        operator.wait_for_url(f"{live_provider.url}/login?**")
        sign_in_with_password(operator, "sales", DEMO_PASSWORD)
        operator.wait_for_url(f"{demo_crm.url}/")
        phone = phone_context.new_page()
        phone.set_default_timeout(15_000)
        phone.goto(f"{live_provider.url}/login")
        sign_in_with_password(phone, "alice", DEMO_PASSWORD)
        phone.wait_for_url(f"{live_provider.url}/")
        yield operator, phone
    finally:
        operator_context.close()
        phone_context.close()


def test_the_caller_approves_on_the_phone_and_the_operator_sees_the_claims(
        live_provider: LiveProvider, demo_crm: DemoCRM, contexts: tuple[Any, Any]) -> None:
    from sso.users.service import find_by_login

    operator, phone = contexts
    _ask(operator, demo_crm.url, "alice", "ticket 4711")
    _phone_answers(phone, live_provider.url, "ticket 4711", "#ciba-confirm")
    # The page reloads itself at the poll interval until the token endpoint answers.
    operator.locator("#ciba-approved").wait_for()
    with live_provider.app.app_context():
        subject = find_by_login("alice").subject
    assert operator.text_content("[data-claim=sub]") == subject
    assert operator.text_content("[data-claim=aud]") == "crm"
    assert operator.text_content("[data-claim=iss]") == live_provider.url
    assert operator.text_content("[data-claim=name]") == "Alice"
    assert "qr" in operator.text_content("[data-claim=amr]").split(", ")
    # The answer is this browser's: another browser cannot read the request's page.
    other = operator.context.browser.new_context(locale="en-US")
    try:
        stranger = other.new_page()
        answer = stranger.goto(operator.url)
        assert answer.status == 404 and stranger.locator("#ciba-approved").count() == 0
    finally:
        other.close()


def test_the_caller_declines_and_the_operator_sees_access_denied(
        live_provider: LiveProvider, demo_crm: DemoCRM, contexts: tuple[Any, Any]) -> None:
    operator, phone = contexts
    _ask(operator, demo_crm.url, "alice", "ticket 4712")
    _phone_answers(phone, live_provider.url, "ticket 4712", "#ciba-cancel")
    operator.locator("#ciba-failed").wait_for()
    assert operator.text_content("#ciba-error") == "access_denied"
    assert "declined" in operator.text_content("#ciba-failed")


def test_a_request_nobody_answers_expires(
        live_provider: LiveProvider, demo_crm: DemoCRM, contexts: tuple[Any, Any]) -> None:
    from sso.security import hash_token

    operator, _phone = contexts
    _ask(operator, demo_crm.url, "alice", "ticket 4713")
    [auth_req_id] = demo_crm.pending_auth_req_ids()
    with live_provider.app.app_context():  # its lifetime runs out at the provider
        store = live_provider.app.extensions["sso_redis"]
        ref = hash_token(auth_req_id)[:43]
        assert store.client.delete(store.key("ciba", "r", ref)) == 1
    operator.locator("#ciba-failed").wait_for()
    assert operator.text_content("#ciba-error") == "expired_token"
    assert "expired" in operator.text_content("#ciba-failed")


def test_an_unknown_user_is_refused_at_once(
        live_provider: LiveProvider, demo_crm: DemoCRM, contexts: tuple[Any, Any]) -> None:
    operator, _phone = contexts
    operator.goto(f"{demo_crm.url}/call-centre")
    operator.fill("#ciba-username", "nobody")
    operator.click("#ciba-send")
    assert operator.text_content("#ciba-error") == "unknown_user_id"
    assert operator.locator("#ciba-problem").is_visible()


def test_the_call_centre_page_speaks_chinese(chromium: Any, demo_crm: DemoCRM) -> None:
    context = chromium.new_context(locale="zh-CN")
    try:
        page = context.new_page()
        answer = page.goto(f"{demo_crm.url}/call-centre")
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert page.text_content("h1") == "呼叫中心：为来电者登录"
        assert page.text_content("#ciba-sign-in-first") == "坐席人员须先使用企业账号登录。"
        # A forged ask (no operator session, no CSRF token) is refused.
        refused = page.request.post(f"{demo_crm.url}/call-centre",
                                    form={"username": "alice", "csrf": "x"})
        assert refused.status == 400
    finally:
        context.close()
