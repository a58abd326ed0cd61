"""``bench/qr_waiters.py``'s reading of the server's workers: their memory and CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import qr_waiters  # noqa: E402

BURN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n" \
       "time.sleep(30)"


def test_the_workers_cpu_is_the_cpu_of_the_masters_children() -> None:
    before = qr_waiters.worker_cpu_seconds(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", BURN])
    try:
        deadline = time.monotonic() + 20
        while qr_waiters.worker_cpu_seconds(os.getpid()) - before < 0.3:
            assert time.monotonic() < deadline, "the child's CPU was not counted"
            time.sleep(0.05)
        folders = qr_waiters.workers_of(os.getpid())
        assert Path(f"/proc/{child.pid}") in folders
        assert qr_waiters.worker_rss_kib(os.getpid()) > 0
        assert qr_waiters.workers_of(child.pid) == []
        assert qr_waiters.worker_cpu_seconds(child.pid) == 0.0
    finally:
        child.kill()
        child.wait()
