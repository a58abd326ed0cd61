"""The production server's start (sso/serving.py): granian's command line, the metrics folder
the workers share, and the hook that ends the QR streams when a worker is told to stop.
tests/qrlogin/test_two_processes.py stops a real server with a stream open."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sso import config as logs_config
from sso import logs, serving
from tests.conftest import production_access_log


def test_the_command_bounds_threads_and_requests_alike() -> None:
    args = serving.command("127.0.0.1", 5000, 3, 20000)
    assert args[:3] == [sys.executable, "-m", "granian"]
    assert args[-1] == "sso.wsgi:app"
    options = {name: value for name, value in zip(args[3:-2], args[4:-1], strict=True)
               if name.startswith("--") and not value.startswith("--")}
    assert options["--interface"] == "wsgi"
    assert options["--workers"] == "3" and options["--port"] == "5000"
    assert options["--blocking-threads"] == options["--backpressure"] == "20000"
    assert options["--workers-kill-timeout"] == str(serving.STOP_TIMEOUT)


def test_the_metrics_folder_is_per_port_and_emptied(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSO_INSTANCE_PATH", str(tmp_path))
    monkeypatch.delenv(serving.METRICS_FOLDER, raising=False)
    folder = Path(serving.prepare_metrics_folder(5123))
    assert folder == tmp_path / "metrics" / "5123"
    assert os.environ[serving.METRICS_FOLDER] == str(folder)
    (folder / "counter_1.db").write_bytes(b"old")
    (folder / "keep.txt").write_text("not ours")
    serving.prepare_metrics_folder(5123)
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]

    chosen = tmp_path / "chosen"
    monkeypatch.setenv(serving.METRICS_FOLDER, str(chosen))
    assert serving.prepare_metrics_folder(5123) == str(chosen) and chosen.is_dir()


def test_a_dead_workers_live_gauges_are_dropped(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    monkeypatch.setenv(serving.METRICS_FOLDER, str(tmp_path))
    for pid in (dead.pid, os.getpid()):
        for kind in ("livesum", "liveall"):
            (tmp_path / f"gauge_{kind}_{pid}.db").write_bytes(b"")
    (tmp_path / f"counter_{dead.pid}.db").write_bytes(b"")
    serving.forget_dead_workers()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([
        f"counter_{dead.pid}.db",  # counters of a dead worker still count
        f"gauge_liveall_{os.getpid()}.db", f"gauge_livesum_{os.getpid()}.db"])


@pytest.fixture
def granian_signals() -> Iterator[object]:
    from granian import _signals

    install = _signals.set_sync_signals
    handlers = {n: signal.getsignal(n) for n in (signal.SIGINT, signal.SIGTERM)}
    yield _signals
    _signals.set_sync_signals = install
    for number, handler in handlers.items():
        signal.signal(number, handler)


def test_a_stop_signal_reaches_the_callback_before_granian(granian_signals: object) -> None:
    """granian's worker installs its handlers after loading the app: the hook set at load
    time runs the callback first, then granian's handler (which starts its graceful stop)."""
    order: list[str] = []
    serving.on_worker_stop(lambda: order.append("streams ended"))
    signal_event = granian_signals.set_sync_signals()  # type: ignore[attr-defined]
    signal_event.add_cb(lambda: order.append("granian stops"))
    os.kill(os.getpid(), signal.SIGTERM)
    assert order[0] == "streams ended"


def test_the_access_log_can_go_to_a_file(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    before = (list(logs.access_log.handlers), logs.access_log.level, logs.access_log.propagate)
    try:
        logs.log_access_to(str(path), "json")
        logs.access("GET", "/token", 200, 0.0, "127.0.0.1")
        logs.access("GET", "/readyz", 200, 0.0, "127.0.0.1")
    finally:
        for handler in logs.access_log.handlers:
            if handler not in before[0]:
                handler.close()
                logs.access_log.removeHandler(handler)
        logs.access_log.setLevel(before[1])
        logs.access_log.propagate = before[2]
    lines = path.read_text().splitlines()
    assert len(lines) == 1 and '"path": "/token"' in lines[0]
    assert logging.getLogger("sso.access") is logs.access_log


class _Recorded(io.StringIO):
    """A stream that notes which thread made each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: list[str] = []

    def write(self, text: str) -> int:
        self.writers.append(threading.current_thread().name)
        return super().write(text)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().split("\n") if line]


def test_queued_access_lines_are_written_together_by_a_thread_of_their_own() -> None:
    """The request's thread only queues its line (no system call); the worker's writer
    thread writes the queue in one write, the lines as each request would have written them."""
    with production_access_log(_Recorded()) as access_stream:
        _written_together(access_stream)


def _written_together(access_stream: _Recorded) -> None:
    logs.batch_lines(0.2)
    for number in range(3):
        logs.access("POST", f"/token/{number}", 200, 0.0, "192.0.2.1")
    deadline = time.monotonic() + 10
    while len(_lines(access_stream)) < 3:
        assert time.monotonic() < deadline, access_stream.getvalue()
        time.sleep(0.05)
    assert set(access_stream.writers) == {"sso-log-lines"}
    assert len(access_stream.writers) < 3  # together, not one write a line
    assert [line["path"] for line in _lines(access_stream)] == [
        "/token/0", "/token/1", "/token/2"]
    logs.batch_lines(0)
    logs.access("POST", "/token/3", 200, 0.0, "192.0.2.1")
    queued, direct = access_stream.getvalue().split("\n")[2:4]
    pattern = r'"time": "[^"]*"|"duration_ms": [0-9.e+]+|/token/\d'
    assert re.sub(pattern, "", queued) == re.sub(pattern, "", direct)


def test_a_stopping_worker_writes_its_queue_and_then_each_line_at_once() -> None:
    with production_access_log(_Recorded()) as access_stream:
        _stopped(access_stream)


def _stopped(access_stream: _Recorded) -> None:
    logs.batch_lines(logs_config.MAX_ACCESS_LOG_DELAY)
    logs.access("GET", "/userinfo", 200, 0.0, None)
    logs.access("POST", "/introspect", 200, 0.0, None)
    assert access_stream.getvalue() == ""  # queued for seconds
    logs.stop_batching()
    logs.access("POST", "/token", 200, 0.0, None)
    assert [line["path"] for line in _lines(access_stream)] == [
        "/userinfo", "/introspect", "/token"]
    assert set(access_stream.writers) == {threading.current_thread().name}


def test_a_full_queue_leaves_each_request_to_write_its_own_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream that takes nothing (a log pipe nobody reads) does not grow the queue without
    bound: past MAX_QUEUED the request writes, and waits, as without the queue."""
    monkeypatch.setattr(logs, "MAX_QUEUED", 2)
    with production_access_log(_Recorded()) as access_stream:
        logs.batch_lines(logs_config.MAX_ACCESS_LOG_DELAY)
        for path in ("/a", "/b", "/c"):
            logs.access("GET", path, 200, 0.0, None)
        assert [line["path"] for line in _lines(access_stream)] == ["/c"]
        assert access_stream.writers == [threading.current_thread().name]


@pytest.mark.parametrize("delay", [-1, 6, "soon", True])
def test_the_access_log_delay_is_a_bounded_number_of_seconds(
        app_config: dict[str, Any], delay: object) -> None:
    from sso import create_app
    from sso.config import ConfigError

    assert create_app(app_config).config["ACCESS_LOG_DELAY"] == 0.1
    with pytest.raises(ConfigError, match="SSO_ACCESS_LOG_DELAY"):
        create_app({**app_config, "ACCESS_LOG_DELAY": delay})


@pytest.mark.slow
def test_a_server_told_to_stop_writes_the_access_lines_it_queued(
        app: Any, tmp_path: Path) -> None:
    """``sso serve`` with lines queued for seconds: SIGTERM right after a request, and the
    request's access line is in the log when the server has stopped."""
    from tests.conftest import free_port

    sso = str(Path(sys.executable).with_name("sso"))
    config = app.config
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    access_log = tmp_path / "access.log"
    environment = {
        "PATH": f"{Path(sso).parent}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(tmp_path),
        "SSO_ISSUER": url, "SSO_DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"],
        "SSO_REDIS_URL": config["REDIS_URL"], "SSO_REDIS_PREFIX": config["REDIS_PREFIX"],
        "SSO_SECRET_KEY": config["SECRET_KEY"],
        "SSO_KEY_ENCRYPTION_KEY": ",".join(config["KEY_ENCRYPTION_KEYS"]),
        "SSO_INSTANCE_PATH": str(tmp_path / "instance"), "SSO_KEYS_DIR": str(tmp_path / "keys"),
        "SSO_ACCESS_LOG": str(access_log),
        "SSO_ACCESS_LOG_DELAY": str(logs_config.MAX_ACCESS_LOG_DELAY),
    }
    server = subprocess.Popen([sso, "serve", "--port", str(port), "--workers", "1"],
                              env=environment, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, f"{url} does not answer"
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=5):  # noqa: S310
                    break
            except OSError:
                time.sleep(0.2)
        request = urllib.request.Request(f"{url}/jwks.json",  # noqa: S310
                                         headers={"X-Request-Id": "queued-then-stopped"})
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            assert answer.status == 200
        os.killpg(server.pid, signal.SIGTERM)
        assert server.wait(30) == 0
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(30)
    lines = [json.loads(line) for line in access_log.read_text().splitlines()]
    assert [line["path"] for line in lines
            if line["request_id"] == "queued-then-stopped"] == ["/jwks.json"]
