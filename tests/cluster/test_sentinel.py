"""A Redis Sentinel failover under a provider node: sign-in and QR go on (docs/deploy.md).

Debian's ``redis-server`` (a master and a replica) and ``redis-sentinel`` (one sentinel,
quorum 1, ``down-after-milliseconds 1000``) on free ports; the node is the production server
(``sso serve``) configured with ``SSO_REDIS_SENTINELS`` only, no Redis URL. A desktop waits
for its QR code to be scanned, the master is killed, the sentinel promotes the replica, and
then: the waiting desktop hears the phone's scan and approval (its worker subscribed again,
on the new master), and a password sign-in runs the whole code flow. A planned failover
(``SENTINEL FAILOVER``) keeps a waiting desktop too.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import redis
import requests

from tests.cluster.conftest import require, require_postgres
from tests.cluster.harness import (
    PASSWORD,
    REDIRECT_URI,
    Node,
    RedisServer,
    Sentinel,
    node_environment,
    postgres_database,
    seed,
    wait_until,
)
from tests.conftest import _pg_admin_url, pkce_pair

pytestmark = pytest.mark.slow
GENEROUS = 30.0  # seconds: a bound against hanging, not a performance assertion
DOWN_AFTER_MS = 1000
#: docs/deploy.md: a failover is over within down-after-milliseconds plus a few seconds
#: (election, promotion); the node follows on its next command.
DOCUMENTED_FAILOVER = DOWN_AFTER_MS / 1000 + 5


def _csrf(html: str) -> str:
    import re

    found = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(
        r'data-csrf="([^"]+)"', html)
    assert found, html[:300]
    return found.group(1)


@pytest.fixture
def sentinel_node(tmp_path_factory: pytest.TempPathFactory) -> Any:
    require("redis-sentinel")
    require("redis-server")
    require_postgres()
    folder = tmp_path_factory.mktemp("sentinel")
    master = RedisServer(folder / "master").start()
    started: list[Any] = [master]
    try:
        replica = RedisServer(folder / "replica",
                              extra=["--replicaof", "127.0.0.1", str(master.port)]).start()
        started.append(replica)
        wait_until(lambda: redis.Redis(port=replica.port).info("replication")[
            "master_link_status"] == "up", GENEROUS, "the replica is in sync")
        sentinel = Sentinel(folder / "sentinel", master.port, down_after_ms=DOWN_AFTER_MS)
        started.append(sentinel.start())
        watcher = redis.Redis(port=sentinel.port)
        wait_until(lambda: watcher.sentinel_slaves("sso"), GENEROUS,
                   "the sentinel knows the replica")
        with postgres_database(_pg_admin_url()) as database_url:
            env = node_environment(folder, "http://127.0.0.1:5000", database_url, {
                "REDIS_SENTINELS": f"127.0.0.1:{sentinel.port}", "REDIS_MASTER_NAME": "sso"})
            facts = seed(env)
            node = Node("n1", env, folder / "n1")
            started.append(node.start())
            node.wait_ready()
            yield node, master, replica, sentinel, facts
            for process in reversed(started):
                process.stop()
            started.clear()
    finally:
        for process in reversed(started):
            process.stop()


def _listen(desktop: requests.Session, url: str) -> queue.Queue[str]:
    """The states a waiting desktop's stream announces, read on a thread of their own; then
    ``<closed>``, or ``<cut>`` where the node stops under a stream that outlived its test."""
    events: queue.Queue[str] = queue.Queue()

    def listen() -> None:
        try:
            with desktop.get(url, stream=True, timeout=GENEROUS) as response:
                for line in response.iter_lines(decode_unicode=True):
                    if line.startswith("data: "):
                        events.put(json.loads(line[6:])["state"])
        except requests.RequestException:
            events.put("<cut>")
            return
        events.put("<closed>")

    threading.Thread(target=listen, daemon=True).start()
    return events


def _authorize(http: requests.Session, base: str, client_id: str) -> tuple[str, str]:
    verifier, challenge = pkce_pair()
    start = http.get(f"{base}/authorize", allow_redirects=False, params={
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
        "scope": "openid", "state": "s", "code_challenge": challenge,
        "code_challenge_method": "S256"}, timeout=GENEROUS)
    return parse_qs(urlsplit(start.headers["Location"]).query)["flow"][0], verifier


def _to_app(http: requests.Session, base: str, response: requests.Response) -> str:
    for _ in range(8):
        assert response.status_code in (302, 303), response.text[:300]
        location = response.headers["Location"]
        if location.startswith(REDIRECT_URI):
            return parse_qs(urlsplit(location).query)["code"][0]
        response = http.get(urljoin(base, location), allow_redirects=False, timeout=GENEROUS)
    raise AssertionError("never came back to the app")


def _sign_in(http: requests.Session, base: str, flow_id: str = "") -> requests.Response:
    query = {"flow": flow_id} if flow_id else {}
    page = http.get(f"{base}/login", params=query, timeout=GENEROUS)
    return http.post(f"{base}/login", allow_redirects=False, timeout=GENEROUS, data={
        "csrf_token": _csrf(page.text), **query, "username": "alice", "password": PASSWORD})


def _redeem(base: str, facts: dict[str, str], code: str, verifier: str) -> dict[str, Any]:
    response = requests.post(f"{base}/token", auth=(facts["client_id"], facts["secret"]), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier}, timeout=GENEROUS)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _claims(id_token: str) -> dict[str, Any]:
    import base64

    payload = id_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def test_sign_in_and_qr_go_on_after_a_failover(sentinel_node: Any) -> None:
    node, master, replica, sentinel, facts = sentinel_node
    base = node.url
    assert sentinel.master() == ("127.0.0.1", master.port)

    desktop = requests.Session()
    flow_id, verifier = _authorize(desktop, base, facts["client_id"])
    csrf = _csrf(desktop.get(f"{base}/qr/login", params={"flow": flow_id},
                             timeout=GENEROUS).text)
    made = desktop.post(f"{base}/qr/sessions", data={"flow": flow_id},
                        headers={"X-CSRF-Token": csrf}, timeout=GENEROUS)
    assert made.status_code == 201, made.text
    code = made.json()
    events = _listen(desktop, f"{base}{code['events_url']}")
    assert events.get(timeout=GENEROUS) == "pending"

    # The QR session is on the replica before the master dies (replication is asynchronous).
    assert redis.Redis(port=master.port).execute_command("WAIT", 1, 5000) == 1
    killed_at = time.monotonic()
    master.kill()
    wait_until(lambda: sentinel.master() == ("127.0.0.1", replica.port), DOCUMENTED_FAILOVER,
               "the sentinel promotes the replica", interval=0.05)
    promoted_at = time.monotonic()

    phone = requests.Session()
    wait_until(lambda: _sign_in(phone, base).status_code == 302, DOCUMENTED_FAILOVER,
               "the phone signs in")
    confirm = phone.get(f"{base}/qr/s/{code['id']}", timeout=GENEROUS)
    assert confirm.status_code == 200, confirm.text[:300]
    serving_at = time.monotonic()
    assert events.get(timeout=GENEROUS) == "scanned"  # the desktop waited through it
    approve = phone.post(f"{base}/qr/s/{code['id']}/approve",
                         data={"csrf_token": _csrf(confirm.text)}, timeout=GENEROUS)
    assert approve.status_code == 200, approve.text[:300]
    assert events.get(timeout=GENEROUS) == "approved"
    # The desktop shows who approved and continues on a click (DESIGN.md §4).
    who = desktop.post(f"{base}{code['complete_url']}", allow_redirects=False,
                       data={"flow": flow_id, "csrf_token": csrf}, timeout=GENEROUS)
    assert who.status_code == 200 and "Signed in as Alice (alice)" in who.text
    done = desktop.post(f"{base}{code['complete_url']}", allow_redirects=False, timeout=GENEROUS,
                        data={"flow": flow_id, "csrf_token": _csrf(who.text),
                              "decision": "continue"})
    claims = _claims(_redeem(base, facts, _to_app(desktop, base, done), verifier)["id_token"])
    assert claims["sub"] == facts["subject"] and claims["amr"] == ["qr"]

    # A password sign-in, the whole code flow, on the new master.
    browser = requests.Session()
    flow_id, verifier = _authorize(browser, base, facts["client_id"])
    code_value = _to_app(browser, base, _sign_in(browser, base, flow_id))
    claims = _claims(_redeem(base, facts, code_value, verifier)["id_token"])
    assert claims["sub"] == facts["subject"] and claims["amr"] == ["pwd"]
    ready = requests.get(f"{base}/readyz", timeout=GENEROUS).json()
    assert ready["status"] == "ready", ready
    print(f"failover: promoted {promoted_at - killed_at:.2f} s after the kill, QR served "
          f"again {serving_at - killed_at:.2f} s after it")


def test_a_planned_failover_keeps_waiting_desktops(sentinel_node: Any) -> None:
    """``SENTINEL FAILOVER`` (planned maintenance): the old master lives on as a replica. The
    sentinel disconnects its clients when it demotes it, and the broker also checks every 5 s
    where the master is; either way a waiting desktop hears the scan made on the new master."""
    node, master, replica, sentinel, facts = sentinel_node
    base = node.url
    desktop = requests.Session()
    flow_id, _verifier = _authorize(desktop, base, facts["client_id"])
    csrf = _csrf(desktop.get(f"{base}/qr/login", params={"flow": flow_id},
                             timeout=GENEROUS).text)
    code = desktop.post(f"{base}/qr/sessions", data={"flow": flow_id},
                        headers={"X-CSRF-Token": csrf}, timeout=GENEROUS).json()
    events = _listen(desktop, f"{base}{code['events_url']}")
    assert events.get(timeout=GENEROUS) == "pending"
    assert redis.Redis(port=master.port).execute_command("WAIT", 1, 5000) == 1
    redis.Redis(port=sentinel.port).execute_command("SENTINEL", "FAILOVER", "sso")
    wait_until(lambda: sentinel.master() == ("127.0.0.1", replica.port), GENEROUS,
               "the sentinel hands the master role over", interval=0.05)
    wait_until(lambda: redis.Redis(port=master.port).info("replication")["role"] == "slave",
               GENEROUS, "the old master follows the new one")

    phone = requests.Session()
    wait_until(lambda: _sign_in(phone, base).status_code == 302, GENEROUS, "the phone signs in")
    wait_until(lambda: phone.get(f"{base}/qr/s/{code['id']}", timeout=GENEROUS).status_code
               == 200, GENEROUS, "the phone opens the code")
    assert events.get(timeout=GENEROUS) == "scanned"
    assert redis.Redis(port=replica.port).hget(
        f"{node.env['SSO_REDIS_PREFIX']}qr:s:{code['id']}", "state") == b"scanned"
