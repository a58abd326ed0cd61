"""``sso demo`` (what ``make run`` starts) end to end: it sets up an empty instance, serves the
provider (`sso serve`) and the three demo apps, a sign-in through the apps without an MFA
policy works with single sign-on between them, ERP leads to MFA enrolment, and SIGTERM stops
every process it started (no orphans), including the embedded Redis."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sso.demo.cli import _port_free
from sso.demo.seed import DEMO_APPS, DEMO_PASSWORD, DEMO_USERS, base_url
from tests.interop.conftest import browse_until

PORTS = [5000, *(a["port"] for a in DEMO_APPS)]

pytestmark = pytest.mark.slow


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def demo_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    busy = [p for p in PORTS if not _port_free("127.0.0.1", p)]
    if busy:
        pytest.skip(f"ports {busy} are in use (is a `make run` running?)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSO_")}
    env.update(SSO_INSTANCE_PATH=str(tmp_path / "instance"), SSO_KEYS_DIR=str(tmp_path / "keys"),
               SSO_ARGON2_MEMORY_KIB="8192", SSO_ARGON2_TIME_COST="1")
    process = subprocess.Popen([sys.executable, "-m", "sso", "demo"], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while not any("no second password" in line for line in seen):  # the banner's last line
        assert time.monotonic() < deadline and process.poll() is None, "".join(seen)
        with contextlib.suppress(queue.Empty):
            seen.append(lines.get(timeout=1))
    try:
        yield process, seen
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sso_demo_serves_signs_in_and_stops_cleanly(
        demo_process: tuple[subprocess.Popen[str], list[str]], tmp_path: Path) -> None:
    process, output = demo_process
    banner = "".join(output)
    for url in ("http://127.0.0.1:5000", "http://127.0.0.1:5001", "http://127.0.0.1:5002",
                "http://127.0.0.1:5003", DEMO_PASSWORD, "alice", "warehouse"):
        assert url in banner
    discovery = requests.get("http://127.0.0.1:5000/.well-known/openid-configuration",
                             timeout=10).json()
    assert discovery["issuer"] == "http://127.0.0.1:5000"

    for lifecycle_user in ("newhire", "trainee"):
        assert lifecycle_user in banner

    # The demo apps without an MFA policy (CRM; inventory, which activates on approval, for a
    # user the seed provisioned there) take a password sign-in, with single sign-on between.
    no_mfa = [a for a in DEMO_APPS if not a["policy"].get("mfa_required")]
    assert len(no_mfa) >= 2, "keep two DEMO_APPS without mfa_required, or adapt this test"
    first_app, second_app = no_mfa[:2]
    first, second = base_url(first_app), base_url(second_app)
    user = next(u for u in DEMO_USERS if not u["admin"] and first_app["client_id"] in u["roles"]
                and second_app["client_id"] in u["roles"])
    browser = requests.Session()
    landing = browse_until(browser, f"{first}/login", f"{first}/", user["username"],
                           DEMO_PASSWORD)
    page = browser.get(landing, timeout=10)
    assert page.url == f"{first}/"
    for role in user["roles"][first_app["client_id"]]:
        assert f"<span>{role}</span>" in page.text
    # Single sign-on: the second app signs the same browser in without a password.
    landing = browse_until(browser, f"{second}/login", f"{second}/", "nobody", "wrong password")
    page = browser.get(landing, timeout=10)
    for role in user["roles"][second_app["client_id"]]:
        assert f"<span>{role}</span>" in page.text
    # CRM, registered by the seed as a CIBA client, asks the provider from its call centre.
    ciba_app = next(a for a in DEMO_APPS if a.get("ciba"))
    assert ciba_app in no_mfa[:2], "the CIBA demo app is one signed in to above"
    form = browser.get(f"{base_url(ciba_app)}/call-centre", timeout=10).text
    csrf = form.split('name="csrf" value="')[1].split('"')[0]
    asked = browser.post(f"{base_url(ciba_app)}/call-centre", timeout=10, data={
        "csrf": csrf, "username": "alice", "binding_message": "demo"})
    assert 'id="ciba-waiting"' in asked.text, asked.text
    # The app that requires MFA leads the same user (no authenticator yet) to enrolment.
    mfa_app = next(a for a in DEMO_APPS if a["policy"].get("mfa_required"))
    enrol = browse_until(browser, f"{base_url(mfa_app)}/login",
                         "http://127.0.0.1:5000/mfa/enrol", "nobody", "wrong password")
    assert enrol.startswith("http://127.0.0.1:5000/mfa/enrol?")

    # A second terminal, while the demo runs: the banner's command with only what a user's
    # shell has; the demo's settings reach it through the instance's settings file.
    printed = next(line.split() for line in output if "sso apps approve" in line)
    second = subprocess.run(
        [str(Path(sys.executable).with_name("sso")), *printed[1:]],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
             "SSO_INSTANCE_PATH": str(tmp_path / "instance"),
             **{name: os.environ[name] for name in ("PYTHONDONTWRITEBYTECODE",
                                                    "PYTHONPYCACHEPREFIX") if name in os.environ}},
        capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "SSO_ENV=development" in (tmp_path / "instance" / "settings.env").read_text()

    started = _descendants(process.pid)
    # The embedded Redis daemonizes (it is no child), so it is found through its pid file.
    redis_pid = int((tmp_path / "instance" / "redis.pid").read_text())
    assert _alive(redis_pid)
    assert len(started) >= 5, started  # the server's master and worker, three apps
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    deadline = time.monotonic() + 10
    while [p for p in started if _alive(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in started if _alive(p)], "processes left behind"
    assert all(_port_free("127.0.0.1", port) for port in PORTS)
    assert not _alive(redis_pid), "the embedded Redis is still running"
