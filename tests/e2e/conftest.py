"""The demo ERP with the demo's own sign-in policy (MFA required, events endpoint), served on a
free port in front of the live provider, and what a person holds: an authenticator app and a
phone camera (QR codes photographed from the page and decoded with zxing-cpp)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from sso.demo.app import EVENTS_PATH, create_demo_app
from sso.demo.seed import DEMO_APPS, DEMO_USERS, seed
from tests.browser import Authenticator
from tests.conftest import LiveProvider, free_port, serve_in_thread

ERP = next(a for a in DEMO_APPS if a["client_id"] == "erp")


@dataclass
class DemoERP:
    url: str
    #: The demo app itself (a Flask app): its local accounts and its session cookie's signer.
    rp: Any

    def local_accounts(self) -> list[dict[str, Any]]:
        return self.rp.extensions["demo_local_accounts"].records()  # type: ignore[no-any-return]

    def id_token_claims(self, context: Any, provider_url: str) -> dict[str, Any]:
        """The ID token the app keeps in its session cookie, verified against the JWKS."""
        [cookie] = [c for c in context.cookies(self.url) if c["name"] == "demo_app_erp"]
        session = self.rp.session_interface.get_signing_serializer(self.rp).loads(
            cookie["value"])
        keys = KeySet.import_key_set(requests.get(f"{provider_url}/jwks.json", timeout=10)
                                     .json())
        return dict(jwt.decode(session["user"]["id_token"], keys,
                               algorithms=["RS256", "ES256"]).claims)


@pytest.fixture
def demo_erp(live_provider: LiveProvider) -> Iterator[DemoERP]:
    """ERP as the demo registers it (``mfa_required``, SETs to the app), on a free port; the
    demo users are seeded, not the lifecycle ones (the tests invite their own)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    demo_app = {**ERP, "port": port,
                "policy": {**ERP["policy"], "events_endpoint": url + EVENTS_PATH}}
    assert demo_app["policy"]["mfa_required"] is True
    with live_provider.app.app_context():
        secrets = seed(live_provider.app.instance_path, apps=[demo_app], users=DEMO_USERS)
    rp = create_demo_app("ERP", port, live_provider.url, "erp", secrets["erp"],
                         receives_events=True)
    server = serve_in_thread(rp, port)
    yield DemoERP(url, rp)
    server.shutdown()


def answer_mfa_if_asked(page: Any, authenticator: Authenticator) -> bool:
    """On the verification page, enter a code; say whether it was asked."""
    page.wait_for_load_state()
    if "/mfa/verify" not in page.url:
        return False
    page.fill("#mfa-verify input[name=code]", authenticator.code())
    page.click("#mfa-verify button[type=submit]")
    return True
