"""A program's POST (or UserInfo GET) handed straight to the app's WSGI callable, as a
server would hand it: the plain environ, no test client (which builds and parses more than
these requests cost). Used by ``instructions.py`` and ``profiling.py --wsgi``; and
:func:`log_as_served`, their ``--served``."""

from __future__ import annotations

import io
import json
import os
import sys
from typing import Any
from urllib.parse import urlencode


def post(app: Any, path: str, form: dict[str, str], authorization: str) -> dict[str, Any]:
    """POST ``form`` to ``path`` with the ``Authorization`` header; the JSON answer (a
    status other than 200 ends the run with the answer's start)."""
    return _call(app, "POST", path, urlencode(form).encode(), authorization)


def get(app: Any, path: str, authorization: str) -> dict[str, Any]:
    """GET ``path`` with the ``Authorization`` header (UserInfo with a bearer token); the
    JSON answer, as :func:`post`."""
    return _call(app, "GET", path, None, authorization)


def _call(app: Any, method: str, path: str, body: bytes | None,
          authorization: str) -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "5000", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body or b""),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False,
        "wsgi.run_once": False, "wsgi.version": (1, 0),
        "HTTP_AUTHORIZATION": authorization, "HTTP_HOST": "127.0.0.1:5000",
        "REMOTE_ADDR": "127.0.0.1"}
    if body is not None:
        environ.update(CONTENT_LENGTH=str(len(body)),
                       CONTENT_TYPE="application/x-www-form-urlencoded")
    status: list[str] = []
    data = b"".join(app(environ, lambda code, headers, exc=None: status.append(code)))
    if not status[0].startswith("200"):
        raise SystemExit(f"{path}: {status[0]} {data[:300]!r}")
    return json.loads(data)  # type: ignore[no-any-return]


def log_as_served(app: Any) -> None:
    """Log as ``sso serve`` does (``sso.wsgi``): JSON lines at INFO, an access line for each
    request. The access lines go to ``/dev/null`` (``SSO_ACCESS_LOG``), the rest to
    stderr. Without it, the measured requests write no access line, which costs a
    request under the server about 10 to 20 µs."""
    from sso import logs  # noqa: PLC0415

    app.config.update(LOG_FORMAT="json", LOG_LEVEL="INFO", ACCESS_LOG=os.devnull)
    logs.configure_for(app)
