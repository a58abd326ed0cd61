"""The production server's start (sso/serving.py): granian's command line, the metrics folder
the workers share, and the hook that ends the QR streams when a worker is told to stop.
tests/qrlogin/test_two_processes.py stops a real server with a stream open."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sso import logs, serving


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
