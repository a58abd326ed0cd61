"""End to end in Debian's chromium: an ``approval`` app shows the waiting page until an admin
runs ``sso apps approve``; then the user gets in and the ID token carries the app's roles."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from sso.cli import cli
from sso.extensions import db
from sso.outbox import OutboxMessage
from tests.conftest import PASSWORD, pkce_pair, query_of

pytestmark = pytest.mark.browser



@pytest.fixture
def erp_site() -> Iterator[tuple[str, list[str]]]:
    """The ERP's callback on a real port; it records the URLs the browser lands on."""
    landed: list[str] = []

    class Callback(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.startswith("/callback"):
                landed.append(self.path)
            body = b"<h1>ERP</h1>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/callback", landed
    server.shutdown()
    server.server_close()


@pytest.fixture
def quick_refresh(live_provider: Any) -> Iterator[None]:
    """The waiting page reloads every second, so the test does not wait ten."""
    config = live_provider.app.config
    before = config["APPS_WAITING_REFRESH"]
    config["APPS_WAITING_REFRESH"] = 1
    yield
    config["APPS_WAITING_REFRESH"] = before


def test_approval_app_waits_for_the_admin_then_the_user_gets_in_with_roles(
        live_provider: Any, browser_page: Any, alice: Any, make_client: Any,
        quick_refresh: None, erp_site: tuple[str, list[str]]) -> None:
    live = live_provider.app
    callback, landed = erp_site
    erp = make_client("ERP", [callback], policy={"activation": "approval"})
    admin = live.test_cli_runner()
    for args in (["roles", "define", erp.client_id, "clerk"],
                 ["roles", "grant", "alice", erp.client_id, "clerk"]):
        assert admin.invoke(cli, args).exit_code == 0

    page = browser_page
    verifier, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": erp.client_id, "redirect_uri": callback,
              "scope": "openid profile roles", "state": "s-1", "nonce": "n-1",
              "code_challenge": challenge, "code_challenge_method": "S256"}
    page.goto(f"{live_provider.url}/authorize?{urlencode(params)}")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#waiting")
    assert "Waiting for approval" in page.content() and "ERP" in page.content()
    page.wait_for_load_state("load")
    assert not landed

    result = admin.invoke(cli, ["apps", "approve", erp.client_id, "alice"])
    assert result.exit_code == 0, result.output
    page.wait_for_url(f"{callback}?**")
    answer = query_of(landed[-1])
    assert answer["state"] == "s-1" and answer["iss"] == live_provider.url

    http = live.test_client()
    basic = base64.b64encode(f"{erp.client_id}:{erp.secret}".encode()).decode()
    tokens = http.post("/token", headers={"Authorization": f"Basic {basic}"}, data={
        "grant_type": "authorization_code", "code": answer["code"], "redirect_uri": callback,
        "code_verifier": verifier,
    }).get_json()
    keys = KeySet.import_key_set(http.get("/jwks.json").get_json())
    claims = jwt.decode(tokens["id_token"], keys, algorithms=["RS256"]).claims
    assert claims["iss"] == live_provider.url and claims["aud"] == erp.client_id
    assert claims["sub"] == alice.subject and claims["roles"] == ["clerk"]
    assert claims["nonce"] == "n-1"

    with live.app_context():
        mail = db.session.scalars(select(OutboxMessage).where(
            OutboxMessage.channel == "mail", OutboxMessage.recipient == "alice@example.com"
        )).one()
        assert "You can now use ERP" in mail.subject
