"""Single sign-on in Chromium through the layer in front of Flask (``sso/oidc/direct.py``):
once signed in, an app's authorization is answered by the layer, and the browser lands at the
app with a code its back end redeems. The first visit to another app, which activates the
user's account there, goes through Flask."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sso.oidc.direct import DirectFirst
from tests.browser import RelyingApp, sign_in_with_password
from tests.conftest import PASSWORD, LiveProvider, free_port, paths_behind, serve_in_thread

pytestmark = pytest.mark.browser


@pytest.fixture
def two_apps(make_client: Any, live_provider: LiveProvider) -> Iterator[list[RelyingApp]]:
    apps, servers = [], []
    for name in ("ERP", "CRM"):
        origin = f"http://127.0.0.1:{free_port()}"
        client = make_client(name, [f"{origin}/cb"])
        apps.append(RelyingApp(live_provider.url, client, f"{origin}/cb"))
        servers.append(serve_in_thread(apps[-1], int(origin.rsplit(":", 1)[1])))
    yield apps
    for server in servers:
        server.shutdown()


def test_a_signed_in_browser_is_answered_in_front_of_flask(
        live_provider: LiveProvider, browser_page: Any, two_apps: list[RelyingApp],
        alice: Any, monkeypatch: Any) -> None:
    erp, crm = two_apps
    through_flask = paths_behind(live_provider.app, DirectFirst, monkeypatch)
    page = browser_page
    page.goto(erp.authorize_url())
    sign_in_with_password(page, "alice", PASSWORD)
    assert erp.tokens(erp.landed(page))["id_token"]
    assert "/authorize" in through_flask  # not signed in yet: the sign-in page
    del through_flask[:]

    page.goto(crm.authorize_url())  # first visit: alice's CRM account is activated
    assert crm.tokens(crm.landed(page))["id_token"]
    assert through_flask == ["/authorize"]
    del through_flask[:]

    for app in (erp, crm):
        page.goto(app.authorize_url())
        answer = app.landed(page)
        assert set(answer) == {"code", "state", "iss"}
        assert app.tokens(answer)["id_token"]
    assert through_flask == []
