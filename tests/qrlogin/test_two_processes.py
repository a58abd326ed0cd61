"""Two provider processes (the production server, `sso serve`) on two ports,
sharing one Redis and one database: the desktop waits on one, the phone approves on the other.
Then the desktop's worker is stopped and its open stream ends with a retry hint."""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import redis as redis_lib
import requests

from sso import create_app, migrate
from tests.browser import read_qr, sign_in_with_password
from tests.conftest import PASSWORD, free_port, pkce_pair

pytestmark = pytest.mark.slow
GENEROUS = 15.0  # seconds; a bound against hanging, not a performance assertion
REDIRECT_URI = "https://erp.example.com/callback"


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(
        r'data-csrf="([^"]+)"', html)
    assert found, html[:300]
    return found.group(1)


class Provider:
    def __init__(self, env: dict[str, str], port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        sso = str(Path(sys.executable).with_name("sso"))
        self.process = subprocess.Popen(
            [sso, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/jwks.json", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        self.process.kill()
        raise AssertionError(f"{self.url} did not start: {self.process.stderr.read()[-2000:]!r}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_url: str
            ) -> Iterator[tuple[Provider, Provider, dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("cluster")
    port_a, port_b = free_port(), free_port()
    prefix = f"ssotest:{secrets.token_hex(4)}:"
    config = {
        "ISSUER": f"http://127.0.0.1:{port_a}",
        "SECRET_KEY": secrets.token_hex(32),
        "KEY_ENCRYPTION_KEY": secrets.token_hex(32),
        "DATABASE_URL": f"sqlite:///{folder / 'sso.sqlite3'}",
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": prefix,
        "KEYS_DIR": str(folder / "keys"),
        "INSTANCE_PATH": str(folder / "instance"),
        "ARGON2_MEMORY_KIB": 8 * 1024,
        "ARGON2_TIME_COST": 1,
    }
    setup = create_app(config)
    migrate.upgrade(setup)
    with setup.app_context():
        from sso.accounts.service import create_user
        from sso.extensions import db
        from sso.oidc.clients import create_client

        user = create_user("alice", password=PASSWORD, email="alice@example.com", name="Alice")
        client, secret = create_client("ERP", [REDIRECT_URI], first_party=True)
        db.session.commit()
        facts = {"subject": user.subject, "client_id": client.client_id, "secret": secret}
    env = {**os.environ, **{f"SSO_{k}": str(v) for k, v in config.items()}}
    a = Provider(env, port_a)
    b = Provider(env, port_b)
    yield a, b, facts
    a.stop()
    b.stop()
    store = redis_lib.Redis.from_url(redis_url)
    keys = list(store.scan_iter(match=prefix + "*"))
    if keys:
        store.delete(*keys)


def _listen(url: str, cookies: Any, into: queue.Queue[tuple[str, Any]]) -> None:
    with requests.get(url, cookies=cookies, stream=True, timeout=60) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("retry:"):
                into.put(("retry", int(line.split(":", 1)[1])))
            elif line.startswith("data: "):
                into.put(("state", json.loads(line[6:])["state"]))
    into.put(("closed", None))


def _next(events: queue.Queue[tuple[str, Any]], kind: str) -> Any:
    while True:
        got, value = events.get(timeout=GENEROUS)
        if got == kind:
            return value


def _desktop_code(a: Provider, facts: dict[str, Any]) -> tuple[requests.Session, dict[str, Any],
                                                                 dict[str, str], str]:
    desktop = requests.Session()
    verifier, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": facts["client_id"],
              "redirect_uri": REDIRECT_URI, "scope": "openid profile", "state": "s1",
              "code_challenge": challenge, "code_challenge_method": "S256"}
    start = desktop.get(f"{a.url}/authorize", params=params, allow_redirects=False)
    flow_id = parse_qs(urlsplit(start.headers["Location"]).query)["flow"][0]
    page = desktop.get(f"{a.url}/qr/login", params={"flow": flow_id})
    csrf = _csrf(page.text)
    code = desktop.post(f"{a.url}/qr/sessions", data={"flow": flow_id},
                        headers={"X-CSRF-Token": csrf})
    assert code.status_code == 201, code.text
    return desktop, code.json(), {"flow": flow_id, "csrf_token": csrf}, verifier


def test_desktop_on_one_process_phone_on_the_other(cluster: Any) -> None:
    a, b, facts = cluster
    desktop, code, form, verifier = _desktop_code(a, facts)
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    threading.Thread(target=_listen, args=(f"{a.url}{code['events_url']}",
                                           desktop.cookies, events), daemon=True).start()
    assert _next(events, "state") == "pending"

    phone = requests.Session()
    login = phone.get(f"{b.url}/login")
    signed_in = phone.post(f"{b.url}/login", allow_redirects=False, data={
        "csrf_token": _csrf(login.text), "username": "alice", "password": PASSWORD})
    assert signed_in.status_code == 302
    confirm = phone.get(f"{b.url}/qr/s/{code['id']}")
    assert confirm.status_code == 200 and "ERP" in confirm.text
    assert _next(events, "state") == "scanned"
    approved_at = time.monotonic()
    approve = phone.post(f"{b.url}/qr/s/{code['id']}/approve",
                         data={"csrf_token": _csrf(confirm.text)})
    assert approve.status_code == 200
    assert _next(events, "state") == "approved"
    print(f"approve -> desktop event: {(time.monotonic() - approved_at) * 1000:.1f} ms")

    who = desktop.post(f"{a.url}{code['complete_url']}", data=form, allow_redirects=False)
    assert who.status_code == 200 and "Signed in as Alice (alice)" in who.text
    done = desktop.post(f"{a.url}{code['complete_url']}", allow_redirects=False,
                        data={**form, "csrf_token": _csrf(who.text), "decision": "continue"})
    assert done.status_code == 302, done.text[:300]
    back = desktop.get(f"{a.url}{done.headers['Location']}", allow_redirects=False)
    location = back.headers["Location"]
    assert location.startswith(REDIRECT_URI)
    auth_code = parse_qs(urlsplit(location).query)["code"][0]
    tokens = requests.post(f"{b.url}/token", auth=(facts["client_id"], facts["secret"]), data={
        "grant_type": "authorization_code", "code": auth_code, "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier}, timeout=30).json()
    payload = tokens["id_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == facts["subject"] and claims["amr"] == ["qr"]


@pytest.mark.browser
def test_a_browser_scans_and_confirms_across_the_two_servers(
        cluster: Any, chromium: Any, phone_device: dict[str, Any]) -> None:
    """The same, with real browsers against the production server: the desktop's page (its
    CSP, cookies and server-sent events through granian) on one process, the phone's
    sign-in and confirmation on the other; the desktop lands at the app's redirect URI."""
    a, b, facts = cluster
    _verifier, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": facts["client_id"],
              "redirect_uri": REDIRECT_URI, "scope": "openid profile", "state": "st",
              "code_challenge": challenge, "code_challenge_method": "S256"}
    desktop_context = chromium.new_context(locale="en-US")
    phone_context = chromium.new_context(**phone_device, locale="en-US")
    # The app's redirect URI answers inside the browser (its host is not on this machine).
    desktop_context.route(f"{REDIRECT_URI}**", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<!doctype html><title>ERP</title>"))
    try:
        desktop = desktop_context.new_page()
        desktop.set_default_timeout(GENEROUS * 1000)
        desktop.goto(f"{a.url}/authorize?{urlencode(params)}")
        desktop.get_by_role("link", name="Scan to sign in").click()
        desktop.locator("#qr-status", has_text="Scan this code").wait_for()
        scanned = urlsplit(read_qr(desktop.locator("#qr-image")))
        assert scanned.path.startswith("/qr/s/")

        phone = phone_context.new_page()
        phone.set_default_timeout(GENEROUS * 1000)
        phone.goto(f"{b.url}/login")
        sign_in_with_password(phone, "alice", PASSWORD)
        phone.wait_for_url(f"{b.url}/")
        phone.goto(f"{b.url}{scanned.path}")
        assert phone.locator("#qr-app").inner_text() == "ERP"
        desktop.locator("#qr-status", has_text="Confirm the sign-in on your phone").wait_for()
        phone.click("#qr-confirm")
        phone.locator("#qr-message", has_text="signed in on your computer").wait_for()

        desktop.locator("#qr-who", has_text="Signed in as Alice (alice)").wait_for()
        desktop.click("#qr-continue")
        desktop.wait_for_url(f"{REDIRECT_URI}**")
        query = parse_qs(urlsplit(desktop.url).query)
        assert query["state"] == ["st"] and query["code"][0]
    finally:
        desktop_context.close()
        phone_context.close()


def test_stopping_a_worker_ends_its_streams_with_a_retry_hint(cluster: Any) -> None:
    a, _b, facts = cluster
    desktop, code, _form, _verifier = _desktop_code(a, facts)
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    threading.Thread(target=_listen, args=(f"{a.url}{code['events_url']}",
                                           desktop.cookies, events), daemon=True).start()
    assert _next(events, "state") == "pending"
    a.stop()
    assert _next(events, "retry") == 2000
    assert _next(events, "state") == "reconnect"
    assert _next(events, "closed") is None
    assert a.process.returncode == 0
