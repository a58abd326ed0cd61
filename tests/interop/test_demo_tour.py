"""What the README tells a newcomer to try in the demo, with the demo's own policies, over HTTP:
inventory (activation on approval) lets the seed-provisioned employees in and holds alice on the
waiting page until ``sso apps approve inventory alice``; trainee must change the initial
password before CRM gets a code; the invitation for newhire waits at /dev/outbox."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urljoin

import pytest
import requests

from sso.cli import cli
from sso.demo.app import create_demo_app
from sso.demo.seed import DEMO_APPS, DEMO_PASSWORD, seed
from tests.conftest import LiveProvider, free_port, serve_in_thread
from tests.interop.conftest import browse_until

NEW_PASSWORD = "Brand-New-Ledger-77"


@pytest.fixture
def demo(live_provider: LiveProvider) -> Iterator[dict[str, str]]:
    """CRM and inventory with the demo's settings on free ports; the full demo seed."""
    apps = {a["client_id"]: {**a, "port": free_port()} for a in DEMO_APPS
            if a["client_id"] in ("crm", "inventory")}
    with live_provider.app.app_context():
        secrets = seed(live_provider.app.instance_path, apps=list(apps.values()))
    servers, urls = [], {}
    for client_id, spec in apps.items():
        rp = create_demo_app(spec["name"], spec["port"], live_provider.url, client_id,
                             secrets[client_id])
        servers.append(serve_in_thread(rp, spec["port"]))
        urls[client_id] = f"http://127.0.0.1:{spec['port']}"
    yield urls
    for server in servers:
        server.shutdown()


def _roles(html: str) -> list[str]:
    return re.findall(r"<span>([\w-]+)</span>", html.split('id="roles"', 1)[1].split("</dd>")[0])


def test_inventory_waits_for_approval_except_for_provisioned_employees(
        live_provider: LiveProvider, demo: dict[str, str]) -> None:
    inventory = demo["inventory"]
    # sales has inventory roles: the seed provisioned the account, the first sign-in activates.
    sales = requests.Session()
    page = sales.get(browse_until(sales, f"{inventory}/login", f"{inventory}/", "sales"),
                     timeout=10)
    assert _roles(page.text) == ["auditor"]

    # alice has none: she waits until an admin approves with the documented command.
    alice = requests.Session()
    waiting = browse_until(alice, f"{inventory}/login", f"{live_provider.url}/apps/waiting")
    assert "Waiting for approval" in alice.get(waiting, timeout=10).text
    result = live_provider.app.test_cli_runner().invoke(
        cli, ["apps", "approve", "inventory", "alice"])
    assert result.exit_code == 0, result.output
    page = alice.get(browse_until(alice, waiting, f"{inventory}/"), timeout=10)
    assert 'id="username">alice<' in page.text and "No roles in this app" in page.text


def test_trainee_changes_the_initial_password_before_crm(
        live_provider: LiveProvider, demo: dict[str, str]) -> None:
    crm = demo["crm"]
    http = requests.Session()
    change = browse_until(http, f"{crm}/login", f"{live_provider.url}/password/change",
                          "trainee", DEMO_PASSWORD)
    form = http.get(change, timeout=10)
    fields = dict(re.findall(r'name="(csrf_token|flow)" value="([^"]*)"', form.text))
    assert fields["flow"]
    response = http.post(urljoin(form.url, "/password/change"), allow_redirects=False,
                         timeout=10, data={**fields, "current": DEMO_PASSWORD,
                                           "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302
    landing = browse_until(http, urljoin(form.url, response.headers["Location"]), f"{crm}/")
    assert _roles(http.get(landing, timeout=10).text) == ["sales-rep"]


def test_newhires_invitation_waits_in_the_development_outbox(
        live_provider: LiveProvider, demo: dict[str, str]) -> None:
    outbox = requests.get(f"{live_provider.url}/dev/outbox", timeout=10)
    assert outbox.status_code == 200
    assert "newhire@example.com" in outbox.text
    assert f"{live_provider.url}/activate/" in outbox.text
