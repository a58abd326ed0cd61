"""gunicorn's logger without the health probes in its access log.

A load balancer polling ``/healthz`` or ``/readyz`` every second would otherwise fill the
access log with lines nobody reads. ``sso serve`` and the image's ``gunicorn.conf.py`` name
this class; it needs gunicorn, which the ``server`` extra installs.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from .health import PATHS


class AccessLog(Logger):  # type: ignore[misc]
    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if environ.get("PATH_INFO") in PATHS:
            return
        super().access(resp, req, environ, request_time)
