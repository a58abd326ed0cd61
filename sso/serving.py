"""The production server: granian's WSGI interface (``sso serve`` and the Docker image).

granian is an HTTP server written in Rust: it parses requests and writes responses outside
Python, and hands each request to the app on a thread of a pool. A request costs the server
~30 CPU-µs against ~300 under gunicorn with gevent workers, which was most of what the
provider's small answers (discovery, JWKS, a client-credentials token) cost
(``docs/performance.md``).

A QR desktop waiting on its server-sent events holds one of those threads while it waits
(a queue wait, no CPU); ``--threads`` bounds them per worker, 20,000 by default, and
``bench/qr_waiters.py`` keeps 10,000 waiting with approvals reaching the desktop in
milliseconds. The threads are started as needed and end after 30 idle seconds.

On a stop (SIGTERM or SIGINT) granian lets every open response finish before the worker
exits; :func:`on_worker_stop` lets the QR streams end at once with a reconnect hint, so a
stop never waits on a desktop and the browsers reconnect to another node.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The folder the workers write their Prometheus values to (multiprocess mode).
METRICS_FOLDER = "PROMETHEUS_MULTIPROC_DIR"
#: Seconds a stopping worker may take to finish its open requests before it is killed.
STOP_TIMEOUT = 10


#: Requests one worker answers at once (``sso serve --threads``), waiting QR desktops included.
THREADS = 20000


def command(host: str, port: int, workers: int, threads: int = THREADS,
            target: str = "sso.wsgi:app") -> list[str]:
    """The granian command line that serves ``target`` (the provider)."""
    return [
        sys.executable, "-m", "granian", "--interface", "wsgi",
        "--host", host, "--port", str(port), "--workers", str(workers),
        # A thread per request being answered, a waiting QR desktop included; granian
        # starts them as needed. backpressure bounds the requests in the app to the same.
        "--blocking-threads", str(threads), "--backpressure", str(threads),
        "--no-ws", "--workers-kill-timeout", str(STOP_TIMEOUT),
        # granian warns at start that many threads "seem quite high": they are meant.
        "--respawn-failed-workers", "--log-level", "error",
        target,
    ]


def prepare_metrics_folder(port: int) -> str:
    """Choose, empty and export the folder the workers write their metrics to: the operator's
    ``PROMETHEUS_MULTIPROC_DIR``, else ``metrics/<port>`` in the instance folder (one per
    server on this host). Values of a previous run would otherwise be added to this one's."""
    from .config import instance_path  # noqa: PLC0415

    folder = Path(os.environ.get(METRICS_FOLDER) or Path(instance_path()) / "metrics" / str(port))
    if folder.is_dir():
        for entry in folder.glob("*.db"):
            entry.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[METRICS_FOLDER] = str(folder)
    return str(folder)


def forget_dead_workers() -> None:
    """Drop the live gauges (QR desktops waiting) of workers that are gone: a worker that
    starts after another one died (granian respawns it) clears what the dead one left."""
    folder = os.environ.get(METRICS_FOLDER)
    if not folder:
        return
    from prometheus_client import multiprocess  # noqa: PLC0415

    for entry in Path(folder).glob("gauge_live*_*.db"):
        pid = entry.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    return True


def on_worker_stop(callback: Callable[[], None]) -> None:
    """Call ``callback`` as soon as granian tells this worker to stop (SIGTERM or SIGINT).

    Called while granian loads the app in the worker, before it installs its own signal
    handlers; this wraps the function that installs them, so that ours runs ``callback`` and
    then granian's (which starts the server's graceful stop). The worker's stop signal is
    granian's, not ours: its ``WorkerSignal`` callbacks run only once every response is done.
    Outside granian (tests, the development server) it does nothing.
    """
    if "granian" not in sys.modules:
        return
    from granian import _signals  # noqa: PLC0415

    install = _signals.set_sync_signals

    def set_sync_signals():  # type: ignore[no-untyped-def]
        signal_event = install()
        for number in (signal.SIGINT, signal.SIGTERM):
            _chain(number, callback)
        return signal_event

    _signals.set_sync_signals = set_sync_signals


def _chain(number: int, callback: Callable[[], None]) -> None:
    granians = signal.getsignal(number)

    def handler(signum: int, frame: Any) -> None:
        callback()
        if callable(granians):
            granians(signum, frame)

    signal.signal(number, handler)
