"""The account lifecycle in a real browser (Debian's chromium through Playwright) against the
provider on a real port: invitation to ID token, lockout and picture challenge, reset by email."""

from __future__ import annotations

import base64
import re
import secrets
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import expect

from sso.accounts import captcha, lifecycle
from sso.extensions import get_redis
from tests.accounts.helpers import in_app, last_link
from tests.conftest import PASSWORD, free_port, pkce_pair, query_of, serve_in_thread

pytestmark = pytest.mark.browser
NEW = "Fresh-Lantern-42"


@pytest.fixture
def relying_party() -> Any:
    """A tiny app that only receives the redirect back (the test reads the code from it)."""
    port = free_port()

    def callback(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"callback received"]

    server = serve_in_thread(callback, port)
    yield f"http://127.0.0.1:{port}/callback"
    server.shutdown()


def local(link: str, live: Any) -> str:
    """Links in mail name the test issuer; open the same path on the live provider."""
    return live.url + "/" + link.split("/", 3)[3]


def test_invited_user_activates_and_signs_in_to_an_app(
        app: Any, live_provider: Any, browser_page: Any, make_client: Any,
        relying_party: str) -> None:
    erp = make_client("ERP", [relying_party])
    in_app(app, lambda: lifecycle.invite("bob", email="bob@example.com", name="Bob"))
    with app.app_context():
        link = local(last_link("bob@example.com", "activation"), live_provider)
    page = browser_page
    page.goto(link)
    assert "Activate your account" in page.content()
    page.fill("input[name=password]", "password123")
    page.fill("input[name=confirm]", "password123")
    page.click("#set-password button[type=submit]")
    assert "too common" in page.inner_text("#form-errors")
    page.fill("input[name=password]", NEW)
    page.fill("input[name=confirm]", NEW)
    page.click("#set-password button[type=submit]")
    page.wait_for_url(f"{live_provider.url}/")
    assert "bob" in page.content()

    verifier, challenge = pkce_pair()
    nonce = secrets.token_urlsafe(8)
    page.goto(f"{live_provider.url}/authorize?" + urlencode({
        "response_type": "code", "client_id": erp.client_id, "redirect_uri": relying_party,
        "scope": "openid profile email", "state": "s1", "nonce": nonce,
        "code_challenge": challenge, "code_challenge_method": "S256"}))
    page.wait_for_url(relying_party + "**")
    answer = query_of(page.url)
    assert answer["state"] == "s1"
    basic = base64.b64encode(f"{erp.client_id}:{erp.secret}".encode()).decode()
    tokens = requests.post(f"{live_provider.url}/token", timeout=10, data={
        "grant_type": "authorization_code", "code": answer["code"],
        "redirect_uri": relying_party, "code_verifier": verifier,
    }, headers={"Authorization": f"Basic {basic}"}).json()
    keys = KeySet.import_key_set(requests.get(f"{live_provider.url}/jwks.json",
                                              timeout=10).json())
    claims = jwt.decode(tokens["id_token"], keys, algorithms=["RS256"]).claims
    assert claims["iss"] == live_provider.url and claims["aud"] == erp.client_id
    assert claims["nonce"] == nonce and claims["amr"] == ["pwd"]
    assert claims["email"] == "bob@example.com" and claims["email_verified"] is True
    # The link worked once.
    page.goto(link)
    assert "already been used" in page.content()


def _captcha_answer(live: Any, page: Any) -> str:
    challenge_id = page.get_attribute("input[name=captcha_id]", "value")
    with live.app.app_context():
        return captcha.answer_of(challenge_id)


def _sign_in(live: Any, page: Any, username: str, password: str) -> None:
    """Fill the sign-in form and wait for its answer's page (else, on a busy machine, the next
    look at the page can read the previous answer); the picture, when asked, is answered
    from its Redis record."""
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    if page.locator("#captcha-image").count():
        page.fill("input[name=captcha]", _captcha_answer(live, page))
    with page.expect_navigation():
        page.click("form#password button[type=submit]")


def test_lockout_and_captcha_appear_and_lift(app: Any, live_provider: Any, browser_page: Any,
                                             alice: Any, runner: Any) -> None:
    from sso.cli import cli

    page = browser_page
    page.goto(f"{live_provider.url}/login")
    assert page.locator("#captcha-image").count() == 0
    for _ in range(app.config["CAPTCHA_AFTER"]):
        _sign_in(live_provider, page, "alice", "Wrong-guess-1")
        assert "Incorrect username or password" in page.inner_text("#login-error")
    assert page.locator("#captcha-image").is_visible()
    expect(page.locator("#captcha-image")).to_have_js_property("complete", True)
    size = page.evaluate("document.getElementById('captcha-image').naturalWidth")
    assert size == 180  # the picture really loaded
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=captcha]", "WRONG")
    page.click("form#password button[type=submit]")
    assert "characters shown in the picture" in page.inner_text("#login-error")
    for _ in range(app.config["LOCKOUT_THRESHOLD"] - app.config["CAPTCHA_AFTER"]):
        _sign_in(live_provider, page, "alice", "Wrong-guess-1")
    assert "paused for 15 minutes" in page.inner_text("#login-error")
    # While locked even the right password is not checked.
    _sign_in(live_provider, page, "alice", PASSWORD)
    assert "paused" in page.inner_text("#login-error")

    result = runner.invoke(cli, ["users", "unlock", "alice"])
    assert result.exit_code == 0, result.output
    _sign_in(live_provider, page, "alice", PASSWORD)
    page.wait_for_url(f"{live_provider.url}/")
    # The address's failures age out after an hour; then the picture is no longer asked.
    with live_provider.app.app_context():
        get_redis().client.delete(get_redis().key("lockout", "ip", "127.0.0.1"))
    page.goto(f"{live_provider.url}/login")
    assert page.locator("#captcha-image").count() == 0


def test_reset_by_email_and_the_old_password_stops_working(
        app: Any, live_provider: Any, browser_page: Any, alice: Any) -> None:
    page = browser_page
    page.goto(f"{live_provider.url}/login")
    page.click("text=Forgot your password?")
    page.fill("input[name=login]", "alice@example.com")
    page.click("#ask-form button[type=submit]")
    assert "If an account matches" in page.content()
    with app.app_context():
        link = local(last_link("alice@example.com", "reset"), live_provider)
    page.goto(link)
    page.fill("input[name=password]", NEW)
    page.fill("input[name=confirm]", NEW)
    page.click("#set-password button[type=submit]")
    assert "Your password has been changed" in page.content()
    page.click("a.button")
    _sign_in(live_provider, page, "alice", PASSWORD)
    assert "Incorrect username or password" in page.inner_text("#login-error")
    _sign_in(live_provider, page, "alice", NEW)
    page.wait_for_url(f"{live_provider.url}/")
    with app.app_context():
        from tests.accounts.helpers import messages

        assert messages("alice@example.com", "password-changed")
    page.goto(link)
    assert re.search("already been used", page.content())
