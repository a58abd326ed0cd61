"""Proximity and honest context (RFC 10027): the phone compares its network with the
desktop's; a different network warns, makes number matching mandatory, or (per app) refuses.
The addresses come through a trusted reverse proxy (X-Forwarded-For from loopback); a
forwarded header from any other peer is dropped, so it cannot forge the desktop's address."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import RelyingApp, read_qr, sign_in_with_password
from tests.conftest import PASSWORD, LiveProvider, free_port, serve_in_thread

pytestmark = pytest.mark.browser

OFFICE, CAFE = "203.0.113.5", "198.51.100.7"


def _provider(app_config: dict[str, Any], **settings: Any) -> Iterator[LiveProvider]:
    from sso import create_app

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    live = create_app({**app_config, "ISSUER": url, "TRUSTED_PROXIES": 1, **settings})
    server = serve_in_thread(live, port)
    yield LiveProvider(url=url, app=live)
    server.shutdown()


@pytest.fixture
def proxied(app: Any, app_config: dict[str, Any]) -> Iterator[LiveProvider]:
    """Behind a reverse proxy on loopback, which reports each client's address."""
    yield from _provider(app_config)


@pytest.fixture
def published(app: Any, app_config: dict[str, Any]) -> Iterator[LiveProvider]:
    """Trusting one proxy, but reached directly (the port published): peers are not it."""
    yield from _provider(app_config, TRUSTED_PROXY_NETWORKS="10.9.9.9/32")


@pytest.fixture
def erp_app(make_client: Any) -> Iterator[Any]:
    servers: list[Any] = []

    def make(provider: LiveProvider) -> RelyingApp:
        origin = f"http://127.0.0.1:{free_port()}"
        client = make_client("ERP", [f"{origin}/cb"])
        rp = RelyingApp(provider.url, client, f"{origin}/cb")
        servers.append(serve_in_thread(rp, int(origin.rsplit(":", 1)[1])))
        return rp

    yield make
    for server in servers:
        server.shutdown()


@pytest.fixture
def devices(chromium: Any, phone_device: dict[str, Any]) -> Iterator[Any]:
    contexts: list[Any] = []

    def open_pair(desktop_ip: str | None, phone_ip: str | None) -> tuple[Any, Any]:
        pages = []
        for ip, extra in ((desktop_ip, {}), (phone_ip, phone_device)):
            context = chromium.new_context(
                **extra, locale="en-US",
                extra_http_headers={"X-Forwarded-For": ip} if ip else {})
            contexts.append(context)
            page = context.new_page()
            page.set_default_timeout(15_000)
            pages.append(page)
        return pages[0], pages[1]

    yield open_pair
    for context in contexts:
        context.close()


def _scan(desktop: Any, phone: Any, provider: LiveProvider, rp: RelyingApp) -> str:
    desktop.goto(rp.authorize_url())
    desktop.get_by_role("link", name="Scan to sign in").click()
    desktop.locator("#qr-status", has_text="Scan this code").wait_for()
    scanned = read_qr(desktop.locator("#qr-image"))
    phone.goto(f"{provider.url}/login")
    sign_in_with_password(phone, "alice", PASSWORD)
    phone.wait_for_url(f"{provider.url}/")
    phone.goto(scanned)
    return scanned


def test_same_network_is_normal(devices: Any, proxied: LiveProvider, erp_app: Any,
                                alice: Any) -> None:
    desktop, phone = devices(OFFICE, OFFICE)
    rp = erp_app(proxied)
    _scan(desktop, phone, proxied, rp)
    assert phone.locator("#qr-ip").inner_text() == OFFICE
    assert phone.locator("#qr-far").count() == 0
    phone.click("#qr-confirm")
    desktop.click("#qr-continue")
    assert rp.landed(desktop)["code"]


def test_another_network_warns_and_needs_the_number(devices: Any, proxied: LiveProvider,
                                                    erp_app: Any, alice: Any) -> None:
    desktop, phone = devices(OFFICE, CAFE)
    rp = erp_app(proxied)
    _scan(desktop, phone, proxied, rp)
    warning = phone.locator("#qr-far").inner_text()
    assert "another network" in warning
    assert "203.0.113.0/24" in warning and "198.51.100.0/24" in warning
    assert phone.locator("#qr-confirm").count() == 0  # only the numbers
    desktop.locator("#qr-number:not([hidden])").wait_for()
    number = desktop.locator("#qr-number-value").inner_text()
    phone.get_by_role("button", name=number, exact=True).click()
    phone.locator("#qr-message", has_text="signed in on your computer").wait_for()
    desktop.click("#qr-continue")
    assert rp.landed(desktop)["code"]


def test_company_networks_count_as_near(devices: Any, proxied: LiveProvider, erp_app: Any,
                                        alice: Any) -> None:
    proxied.app.config["QR_TRUSTED_NETWORKS"] = "203.0.113.0/24, 198.51.100.0/24"
    desktop, phone = devices(OFFICE, CAFE)
    _scan(desktop, phone, proxied, erp_app(proxied))
    assert phone.locator("#qr-far").count() == 0
    phone.locator("#qr-confirm").wait_for()


def test_an_app_can_refuse_approvals_from_another_network(
        devices: Any, proxied: LiveProvider, erp_app: Any, alice: Any) -> None:
    rp = erp_app(proxied)
    with proxied.app.app_context():
        from sso.extensions import db
        from sso.oidc.public import get, update_policy

        update_policy(get(rp.client.client_id), qr_refuse_remote=True)
        db.session.commit()
    desktop, phone = devices(OFFICE, CAFE)
    _scan(desktop, phone, proxied, rp)
    phone.locator("h1", has_text="Not from another network").wait_for()
    assert phone.locator("#qr-confirm").count() == 0


def test_a_forged_forwarded_header_is_ignored(devices: Any, published: LiveProvider,
                                              erp_app: Any, alice: Any) -> None:
    """The attacker's desktop claims the victim's office address; the provider, reached
    directly and not through its proxy, shows the address the connection came from."""
    desktop, phone = devices(OFFICE, None)
    _scan(desktop, phone, published, erp_app(published))
    assert phone.locator("#qr-ip").inner_text() == "127.0.0.1"
