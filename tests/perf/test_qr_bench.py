"""``bench/qr_waiters.py``'s reading of the server's workers: their memory and CPU."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import qr_waiters  # noqa: E402

BURN = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\n" \
       "time.sleep(60)"
#: The child burns 0.5 s of CPU and the test waits for 0.3: /proc counts whole ticks.
#: A master of its own, like granian's, whose one child is the worker: nothing else of the
#: test process's children (which come and go) counts.
MASTER = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {BURN!r}]).wait()"


def test_the_workers_cpu_is_the_cpu_of_the_masters_children() -> None:
    master = subprocess.Popen([sys.executable, "-c", MASTER], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while qr_waiters.worker_cpu_seconds(master.pid) < 0.3:
            assert time.monotonic() < deadline, "the child's CPU was not counted"
            time.sleep(0.05)
        worker, = qr_waiters.workers_of(master.pid)
        assert qr_waiters.worker_rss_kib(master.pid) > 0
        assert qr_waiters.workers_of(int(worker.name)) == []
        assert qr_waiters.worker_cpu_seconds(int(worker.name)) == 0.0
        assert Path(f"/proc/{master.pid}") not in qr_waiters.workers_of(master.pid)
    finally:
        os.killpg(master.pid, signal.SIGKILL)
        master.wait()


def test_a_batch_not_connected_in_time_ends_the_run_with_what_was_reached() -> None:
    """A server that stops taking desktops (threads that no longer grow) must not end
    ``qr_waiters.py`` in a traceback: the batch that waited too long is named, with how many
    desktops had connected, and the run's figures are printed before it exits."""

    class Stalled(qr_waiters.Waiters):
        async def wait_on(self, qr_id: str, secret: str, first: asyncio.Event) -> None:
            if qr_id < "c":  # the first batch connects, the second never does
                self.ready += 1
                first.set()
            await asyncio.sleep(3600)

    waiters = Stalled(port=9)
    codes = [("a1", "s"), ("b2", "s"), ("c3", "s"), ("d4", "s")]

    async def connect() -> str:
        try:
            await waiters.open_all(codes, batch=2, timeout=0.2)
        except qr_waiters.NotConnected as gave_up:
            return str(gave_up)
        finally:
            for task in waiters.tasks:
                task.cancel()
        return "connected"

    # A loop of its own, on a thread of its own: the browser tests' loop runs on this one.
    with ThreadPoolExecutor(1) as pool:
        outcome = pool.submit(asyncio.run, connect()).result(timeout=30)
    assert outcome == ("the desktops 3 to 4 were not all connected within 0.2 s:"
                       " 2 connected, 0 failed")


def test_the_threads_of_each_worker_are_counted() -> None:
    master = subprocess.Popen([sys.executable, "-c", MASTER], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not qr_waiters.worker_threads(master.pid):
            assert time.monotonic() < deadline, "the worker was not found"
            time.sleep(0.05)
        assert qr_waiters.worker_threads(master.pid) == [1]
    finally:
        os.killpg(master.pid, signal.SIGKILL)
        master.wait()
