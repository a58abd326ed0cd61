"""Direct requests (RFC 6749 §3.2): a client's own calls to the token endpoint, introspection
and UserInfo, made by a program with no browser in between, answered in front of Flask.

Each of those endpoints has one implementation in :mod:`.endpoints`, which takes the parsed
form and the request headers and returns the whole answer. Two transports call it: the Flask
routes (``views.py``), for every request, and :class:`DirectFirst`, a WSGI layer in front of
Flask, for the requests that need nothing Flask gives: no query string and no cookies, and a
POST with a form-encoded body (or, for UserInfo, a GET). It skips Flask's request and response
objects, routing, cookie session and request hooks, and does itself what those hooks do for
these requests: the request id, the security, cache and CORS headers, the access-log line, the
metrics, the caller's address for the audit log (:func:`sso.web.hold_origin`) and the first
delivery of the events the answer committed (:func:`sso.outbox.collect_committed`). An
exception is answered by the app's own error handlers, as Flask would answer it.
docs/performance.md tells what it saves; ``tests/oidc/test_direct.py`` holds both transports
to the same answers.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask
from werkzeug.datastructures import EnvironHeaders, MultiDict
from werkzeug.wrappers import Response

from .. import database, logs, metrics, outbox
from ..web import HSTS, SECURITY_HEADERS, hold_origin, release_origin
from . import endpoints
from .server import CORS, CORS_ENDPOINTS, FORM, NO_STORE

#: Path -> endpoint name, for the requests :class:`DirectFirst` may take.
DIRECT = {"/token": "oidc.token", "/introspect": "oidc.introspect",
          "/userinfo": "oidc.userinfo"}
#: The endpoints that take only form-encoded parameters (RFC 6749 §3.2, RFC 7662 §2.1).
FORM_ONLY = frozenset({"oidc.token", "oidc.introspect"})
_NO_PARAMETERS: MultiDict[str, str] = MultiDict()


class DirectRequest:
    """What the endpoints read of a request answered in front of Flask: Flask's request has
    the same four attributes."""

    __slots__ = ("method", "headers", "form", "args")

    def __init__(self, method: str, headers: Mapping[str, str],
                 form: MultiDict[str, str]) -> None:
        self.method = method
        self.headers = headers
        self.form = form
        self.args = _NO_PARAMETERS  # a request with a query string goes on to Flask


#: Endpoint name -> its one implementation (the Flask views call the same functions).
_ANSWERS: dict[str, Callable[[DirectRequest], Response]] = {
    "oidc.token": lambda request: endpoints.token(request.form, request.headers),
    "oidc.introspect": lambda request: endpoints.introspection(request.form, request.headers),
    "oidc.userinfo": endpoints.userinfo,
}


def _mimetype(environ: dict[str, Any]) -> str:
    return str(environ.get("CONTENT_TYPE", "")).partition(";")[0].strip().lower()


def _body(environ: dict[str, Any], limit: int) -> bytes | None:
    """The whole body, if it has a length within ``limit`` and arrives whole."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    if not 0 < length <= limit:
        return None
    body = bytes(environ["wsgi.input"].read(length))
    environ["wsgi.input"] = io.BytesIO(body)  # Flask may read it again if it goes on there
    return body if len(body) == length else None


def _form(body: bytes) -> MultiDict[str, str] | None:
    """The form as Werkzeug parses it, or None for what Flask refuses or parses otherwise
    (NUL characters: ``web._refuse_nul``; a body that is not UTF-8)."""
    if b"%00" in body or b"\x00" in body:
        return None
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return None
    return MultiDict(parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote"))


class DirectFirst:
    """WSGI layer in front of Flask that answers the plain direct requests (module doc)."""

    def __init__(self, app: Flask, wsgi_app: Callable[..., Iterable[bytes]],
                 turns: database.SQLiteTurns | None = None) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        #: On SQLite, the turns the hot requests take (sso.database.SQLiteTurns).
        self.turns = turns
        self.limit = int(app.config["MAX_CONTENT_LENGTH"])
        # What Flask's after-request hooks give these endpoints' answers, errors included.
        self.headers = [*NO_STORE, *SECURITY_HEADERS,
                        *([HSTS] if app.config["SESSION_COOKIE_SECURE"] else [])]
        # Headers whose value this layer sets, whatever the answer had.
        self.replaced = frozenset({logs.HEADER.lower()})
        self.cors_replaced = self.replaced | {CORS[0].lower()}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        endpoint = DIRECT.get(environ.get("PATH_INFO", ""))
        method = environ.get("REQUEST_METHOD", "")
        if endpoint is None or environ.get("QUERY_STRING") or "HTTP_COOKIE" in environ:
            return self.wsgi_app(environ, start_response)
        body = form = None
        if method == "GET" and endpoint == "oidc.userinfo":
            form = _NO_PARAMETERS
        elif method == "POST" and _mimetype(environ) == FORM:
            body = _body(environ, self.limit)
            form = None if body is None else _form(body)
        if form is None:
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        request_id = logs.request_id_from(environ.get("HTTP_X_REQUEST_ID"))
        serving = logs.serving(request_id)
        caller = hold_origin(environ)
        try:
            with self._turn(endpoint, form):
                try:
                    response = self._answer(endpoint, DirectRequest(
                        method, EnvironHeaders(environ), form))
                except Exception as error:  # noqa: BLE001 - the app's error handlers answer
                    response = self._failure(environ, error)
            status = response.status_code
            content = response.get_data()
            start_response(response.status,
                           self._headers(response, endpoint, request_id, len(content)))
            logs.access(method, environ["PATH_INFO"], status, started,
                        environ.get("REMOTE_ADDR"))
        finally:
            release_origin(caller)
            logs.served(serving)
        metrics.observe(endpoint, status, started)
        if endpoint == "oidc.token" and status == 200:
            metrics.token_issued(form.get("grant_type", ""))
        return [content]

    def _turn(self, endpoint: str, form: MultiDict[str, str]) -> AbstractContextManager[None]:
        """The request's turn on SQLite, but for a ``client_credentials`` token, which
        touches no database: a turn there only made it wait."""
        if self.turns is None or (endpoint == "oidc.token"
                                  and form.get("grant_type") == "client_credentials"):
            return nullcontext()
        return self.turns.taken()

    def _headers(self, response: Response, endpoint: str, request_id: str, length: int
                 ) -> list[tuple[str, str]]:
        """The answer's headers, plus what Flask's after-request hooks and Werkzeug's
        ``get_wsgi_headers`` would add: the defaults where the answer has none, CORS on the
        endpoints that allow it, the request id, the length of the body. (These answers are
        never a redirect nor a 204 or 304.)"""
        replaced = self.cors_replaced if endpoint in CORS_ENDPOINTS else self.replaced
        headers = [(name, value) for name, value in response.headers.items()
                   if name.lower() not in replaced]
        present = {name.lower() for name, _ in headers}
        headers += [pair for pair in self.headers if pair[0].lower() not in present]
        if "content-length" not in present:
            headers.append(("Content-Length", str(length)))
        if endpoint in CORS_ENDPOINTS:
            headers.append(CORS)
        headers.append((logs.HEADER, request_id))
        return headers

    def _answer(self, endpoint: str, request: DirectRequest) -> Response:
        autostart = self.app.extensions.get("sso_outbox_autostart")
        if autostart is not None:
            autostart()
        with self.app.app_context():
            committed, collecting = outbox.collect_committed()
            try:
                refusal = (endpoints.form_refusal(FORM, False, request.form, request.headers)
                           if endpoint in FORM_ONLY else None)
                response = refusal or _ANSWERS[endpoint](request)
            finally:
                outbox.stop_collecting(collecting)
            # What Flask's after-request hook does: the events the answer committed go out now.
            outbox.deliver_soon(committed)
            return response

    def _failure(self, environ: dict[str, Any], error: Exception) -> Response:
        """The answer Flask gives when a view raises ``error``: its error handlers run in a
        request context (a database or Redis that is down: 503 in JSON; anything else: 500,
        or the exception itself where ``PROPAGATE_EXCEPTIONS`` is set, as in tests)."""
        app = self.app
        with app.request_context(environ):
            try:
                answer = app.handle_user_exception(error)
            except Exception as unhandled:  # noqa: BLE001 - as Flask's wsgi_app does
                answer = app.handle_exception(unhandled)
            return app.make_response(answer)


def init_app(app: Flask) -> None:
    turns = database.take_turns(app, [*DIRECT, "/authorize"])
    app.wsgi_app = DirectFirst(app, app.wsgi_app, turns)  # type: ignore[method-assign]
