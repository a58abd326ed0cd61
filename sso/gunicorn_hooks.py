"""gunicorn settings the provider always wants: the metrics folder shared by the workers.

``sso serve`` loads this module as gunicorn's config (``-c python:sso.gunicorn_hooks``) and
``docker/gunicorn.conf.py`` imports its hooks. The folder must be known before a worker imports
:mod:`prometheus_client` (it picks its multiprocess mode at import), so it is chosen here, in the
master, as gunicorn reads its config: ``PROMETHEUS_MULTIPROC_DIR`` if the operator set it, else
a folder of this server's own under the system's temporary folder. It is emptied when the server
starts (values of a previous run would be added to this one's), and a dead worker's gauges are
dropped (``child_exit``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics_folder() -> str:
    """Choose, empty and export the folder the workers write their metrics to."""
    chosen = os.environ.get(VARIABLE)
    if chosen:
        folder = Path(chosen)
        if folder.is_dir():
            for entry in folder.glob("*.db"):
                entry.unlink(missing_ok=True)
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = Path(tempfile.mkdtemp(prefix="sso-metrics-"))
    os.environ[VARIABLE] = str(folder)
    return str(folder)


def child_exit(server: Any, worker: Any) -> None:
    """A worker ended: its live gauges (QR desktops waiting) no longer count."""
    from prometheus_client import multiprocess  # noqa: PLC0415

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """The server stops: remove the folder it made for itself."""
    folder = os.environ.get(VARIABLE, "")
    if Path(folder).name.startswith("sso-metrics-") and os.environ.get("SSO_METRICS_OWN_DIR"):
        shutil.rmtree(folder, ignore_errors=True)


if VARIABLE not in os.environ:
    os.environ["SSO_METRICS_OWN_DIR"] = "1"
prepare_metrics_folder()
