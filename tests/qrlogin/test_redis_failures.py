"""Redis unreachable or restarted: the QR tab says so or expires cleanly, nothing hangs, and
password sign-in keeps working. Uses a redis-server of its own on a free port."""

from __future__ import annotations

import queue
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_lib

from sso import create_app
from tests.conftest import Flow, csrf_of, free_port
from tests.qrlogin.conftest import Desktop, Phone
from tests.qrlogin.test_waiting import GENEROUS, _stream


class OwnRedis:
    def __init__(self, folder: str) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.folder],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis_lib.Redis.from_url(self.url)
        for _ in range(100):
            try:
                if client.ping():
                    return
            except redis_lib.RedisError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def own_redis(tmp_path: Any) -> Iterator[OwnRedis]:
    server = OwnRedis(str(tmp_path))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def apps_on(app: Any, app_config: dict[str, Any]) -> Iterator[Any]:
    """Make apps on the same (migrated) database with another Redis; stop their brokers."""
    made: list[Any] = []

    def make(redis_url: str) -> Any:
        made.append(create_app({**app_config, "REDIS_URL": redis_url}))
        return made[-1]

    yield make
    for other in made:
        other.extensions["sso_qr_broker"].shutdown()


def test_redis_down_the_qr_tab_says_so_and_passwords_work(apps_on: Any, alice: Any,
                                                          erp: Any) -> None:
    broken = apps_on(f"redis://127.0.0.1:{free_port()}/0")
    http = broken.test_client()
    page = http.get("/qr/login")
    assert page.status_code == 200
    assert "unavailable" in page.get_data(as_text=True)
    csrf = csrf_of(http.get("/login").get_data(as_text=True))
    created = http.post("/qr/sessions", headers={"X-CSRF-Token": csrf})
    assert created.status_code == 503 and created.get_json()["error"] == "unavailable"
    assert http.get("/qr/s/" + "A" * 22).status_code == 503
    back = Flow(http, erp).authorize()  # password sign-in, through the whole code flow
    assert back["code"]


def test_a_redis_restart_while_waiting_expires_the_code(apps_on: Any, own_redis: OwnRedis,
                                                        erp: Any, alice: Any) -> None:
    restarted = apps_on(own_redis.url)
    desktop = Desktop(restarted.test_client(), Flow(restarted.test_client(), erp))
    code = desktop.start()
    states = _stream(desktop, code)
    assert states.get(timeout=GENEROUS) == "pending"
    own_redis.stop()
    assert states.get(timeout=GENEROUS) == "expired"
    assert states.get(timeout=GENEROUS) == "<closed>"
    own_redis.start()  # empty: the code is gone for good
    assert desktop.http.get(code["poll_url"] + "?known=pending").get_json()["state"] == "expired"
    fresh = desktop.new_code()
    states = _stream(desktop, fresh)
    assert states.get(timeout=GENEROUS) == "pending"
    phone = Phone(restarted.test_client())
    phone.http.environ_base["HTTP_USER_AGENT"] = "phone"
    phone.sign_in()
    phone.open(fresh["id"])
    # The worker's subscription came back by itself and wakes the new waiter.
    assert _next_state(states, {"scanned"}) == "scanned"


def _next_state(states: queue.Queue[str], wanted: set[str]) -> str:
    while True:
        state = states.get(timeout=GENEROUS)
        if state in wanted:
            return state
