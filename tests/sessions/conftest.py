"""Fixtures for sessions and single logout: the three demo apps with their logout channels
in front of the live provider, and the provider's outbox delivery loop running for real."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sso.demo.app import create_demo_app
from sso.demo.seed import DEMO_APPS, seed
from tests.conftest import LiveProvider, free_port, serve_in_thread


@dataclass
class DemoApp:
    client_id: str
    name: str
    url: str
    rp: Any
    secret: str


@pytest.fixture
def delivery(live_provider: LiveProvider) -> Iterator[Any]:
    """The live provider's outbox loop, started as in production and stopped afterwards."""
    loop = live_provider.app.extensions["sso_outbox"]
    loop.stopping.clear()
    loop.start()
    yield loop
    loop.stopping.set()
    from sso import outbox

    for wake in outbox._wakes.values():
        wake.set()
    for thread in loop.threads.values():
        thread.join(timeout=10)
    loop.threads.clear()
    loop.stopping.clear()


@pytest.fixture
def demo_apps(live_provider: LiveProvider) -> Iterator[dict[str, DemoApp]]:
    """ERP and inventory (back-channel logout) and CRM (front-channel), seeded on free ports
    with no sign-in policy (so alice's password is all it takes) and served."""
    specs = [{**a, "port": free_port(), "policy": {}} for a in DEMO_APPS]
    with live_provider.app.app_context():
        secrets = seed(live_provider.app.instance_path, apps=specs)
    apps, servers = {}, []
    for spec in specs:
        rp = create_demo_app(spec["name"], spec["port"], live_provider.url, spec["client_id"],
                             secrets[spec["client_id"]], logout_channel=spec["logout"])
        servers.append(serve_in_thread(rp, spec["port"]))
        apps[spec["client_id"]] = DemoApp(spec["client_id"], spec["name"],
                                          f"http://127.0.0.1:{spec['port']}", rp,
                                          secrets[spec["client_id"]])
    yield apps
    for server in servers:
        server.shutdown()


def wait_for(condition: Callable[[], Any], what: str, limit: float = 30.0) -> Any:
    """Poll ``condition`` until it holds (not a timing assertion: the limit only stops a
    test that would otherwise hang)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting: {what}")
