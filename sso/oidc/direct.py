"""Requests answered in front of Flask: a client's direct requests (RFC 6749 §3.2) to the
token endpoint, introspection and UserInfo, made by a program with no browser in between, and
a signed-in browser's authorization request that is owed a code.

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

The authorization endpoint is decided by :func:`.authorize.decide` without effects and
answered by :func:`.authorize.issue` when a code is owed; the Flask route calls the same two.
This layer takes a GET of ``/authorize`` whose cookies hold an SSO session (none twice, as
``web._refuse_duplicate_cookies`` wants) and whose query is UTF-8 without a NUL (as
``web._refuse_nul`` wants), decides it, and answers it here only when a code is owed and the
decision causes nothing: anything else (an error, a page, an app account to activate) goes on
to Flask, which decides it again and answers it.
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
from werkzeug.http import parse_cookie
from werkzeug.wrappers import Response

from .. import database, logs, metrics, outbox
from ..flow import passage
from ..web import (
    DEFAULT_CSP,
    HSTS,
    SECURITY_HEADERS,
    duplicate_cookie,
    hold_origin,
    refused_query,
    release_origin,
)
from . import authorize, endpoints
from .server import CORS, CORS_ENDPOINTS, FORM, NO_STORE

#: Path -> endpoint name, for the requests :class:`DirectFirst` may take.
DIRECT = {"/token": "oidc.token", "/introspect": "oidc.introspect",
          "/userinfo": "oidc.userinfo"}
DIRECT_ENDPOINTS = frozenset(DIRECT.values())
AUTHORIZE = "/authorize"
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
        return _parameters(body.decode())
    except UnicodeDecodeError:
        return None


def _parameters(text: str) -> MultiDict[str, str]:
    """URL-encoded parameters as Werkzeug parses a form or a query."""
    return MultiDict(parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote"))


class DirectFirst:
    """WSGI layer in front of Flask that answers the plain direct requests and the signed-in
    authorizations (module doc)."""

    def __init__(self, app: Flask, wsgi_app: Callable[..., Iterable[bytes]],
                 turns: database.Turns | None = None) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        #: The turns the hot requests take (sso.database.Turns).
        self.turns = turns
        self.limit = int(app.config["MAX_CONTENT_LENGTH"])
        hsts = [HSTS] if app.config["SESSION_COOKIE_SECURE"] else []
        html = [("Content-Security-Policy", DEFAULT_CSP), ("Cache-Control", "no-store")]
        # What Flask's after-request hooks give an answer (errors included), by whether it
        # is a direct request's and whether it is HTML (an authorization's redirect is): the
        # API's cache headers, and web's ``_security_headers`` with nothing allowed beyond
        # the page's own origin.
        self.defaults = {
            (True, False): [*NO_STORE, *SECURITY_HEADERS, *hsts],
            (True, True): [*NO_STORE, *SECURITY_HEADERS, html[0], *hsts],
            (False, False): [*SECURITY_HEADERS, *hsts],
            (False, True): [*SECURITY_HEADERS, *html, *hsts],
        }
        # Headers whose value this layer sets, whatever the answer had.
        self.replaced = frozenset({logs.HEADER.lower()})
        self.cors_replaced = self.replaced | {CORS[0].lower()}
        with app.app_context():
            self.session_cookie = passage.session_cookie_name()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == AUTHORIZE:
            return self._authorization(environ, start_response)
        endpoint = DIRECT.get(path)
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
        request = DirectRequest(method, EnvironHeaders(environ), form)
        refused = (lambda: endpoints.form_refusal(FORM, False, form, request.headers)
                   ) if endpoint in FORM_ONLY else (lambda: None)
        served = self._serve(environ, start_response, endpoint, self._turn(endpoint, form),
                             lambda: refused() or _ANSWERS[endpoint](request))
        assert served is not None  # noqa: S101 - a direct request is always answered here
        content, status = served
        if endpoint == "oidc.token" and status == 200:
            metrics.token_issued(form.get("grant_type", ""))
        return content

    def _authorization(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """A signed-in browser's authorization request, answered here if a code is owed and
        the decision causes nothing; else by Flask (module doc)."""
        taken = _signed_in_authorization(environ, self.session_cookie)
        if taken is not None:
            params, secret = taken

            def answer() -> Response | None:
                with database.request_writes():  # as the Flask route runs it
                    outcome = authorize.decide(params, secret)
                    if not isinstance(outcome, authorize.CodeOwed) or outcome.effects:
                        return None
                    return authorize.issue(outcome)

            turn = self.turns.taken() if self.turns is not None else nullcontext()
            served = self._serve(environ, start_response, "oidc.authorize", turn, answer)
            if served is not None:
                return served[0]
        return self.wsgi_app(environ, start_response)

    def _serve(self, environ: dict[str, Any], start_response: Any, endpoint: str,
               turn: AbstractContextManager[None], answer: Callable[[], Response | None]
               ) -> tuple[list[bytes], int] | None:
        """Answer the request with ``answer``'s response, in ``turn``, with what Flask's
        hooks do around a view; None (nothing sent, logged or counted) if ``answer`` declines
        it, for Flask to answer."""
        started = time.perf_counter()
        request_id = logs.request_id_from(environ.get("HTTP_X_REQUEST_ID"))
        serving = logs.serving(request_id)
        caller = hold_origin(environ)
        try:
            with turn:
                try:
                    response = self._answer(answer)
                except Exception as error:  # noqa: BLE001 - the app's error handlers answer
                    response = self._failure(environ, error)
            if response is None:
                return None
            status = response.status_code
            content = response.get_data()
            start_response(response.status,
                           self._headers(response, endpoint, request_id, len(content)))
            logs.access(environ["REQUEST_METHOD"], environ["PATH_INFO"], status, started,
                        environ.get("REMOTE_ADDR"))
        finally:
            release_origin(caller)
            logs.served(serving)
        metrics.observe(endpoint, status, started)
        return [content], status

    def _turn(self, endpoint: str, form: MultiDict[str, str]) -> AbstractContextManager[None]:
        """The request's turn (sso.database.Turns), but for a ``client_credentials`` token,
        which touches no database: a turn there only made it wait."""
        if self.turns is None or (endpoint == "oidc.token"
                                  and form.get("grant_type") == "client_credentials"):
            return nullcontext()
        return self.turns.taken()

    def _headers(self, response: Response, endpoint: str, request_id: str, length: int
                 ) -> list[tuple[str, str]]:
        """The answer's headers, plus what Flask's after-request hooks and Werkzeug's
        ``get_wsgi_headers`` would add: the defaults where the answer has none, CORS on the
        endpoints that allow it, the request id, the length of the body. (These answers are
        never a 204 or 304, and a redirect's location is sent as it is, as Werkzeug does.)"""
        replaced = self.cors_replaced if endpoint in CORS_ENDPOINTS else self.replaced
        headers = [(name, value) for name, value in response.headers.items()
                   if name.lower() not in replaced]
        present = {name.lower() for name, _ in headers}
        defaults = self.defaults[endpoint in DIRECT_ENDPOINTS, response.mimetype == "text/html"]
        headers += [pair for pair in defaults if pair[0].lower() not in present]
        if "content-length" not in present:
            headers.append(("Content-Length", str(length)))
        if endpoint in CORS_ENDPOINTS:
            headers.append(CORS)
        headers.append((logs.HEADER, request_id))
        return headers

    def _answer(self, answer: Callable[[], Response | None]) -> Response | None:
        autostart = self.app.extensions.get("sso_outbox_autostart")
        if autostart is not None:
            autostart()
        with self.app.app_context():
            committed, collecting = outbox.collect_committed()
            try:
                response = answer()
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


def _signed_in_authorization(environ: dict[str, Any], session_cookie: str
                             ) -> tuple[MultiDict[str, str], str] | None:
    """The parameters of a GET of ``/authorize`` and its SSO session's secret, parsed as
    Flask parses them, if the request may be answered here: Flask's hooks would not refuse it
    (:func:`sso.web.refused_query`, :func:`sso.web.duplicate_cookie`) and ``session_cookie``
    is one of its cookies."""
    query = environ.get("QUERY_STRING", "")
    if (environ.get("REQUEST_METHOD") != "GET" or not query or "HTTP_COOKIE" not in environ
            or refused_query(query)):
        return None
    cookies = parse_cookie(environ["HTTP_COOKIE"])  # as request.cookies: WSGI gives one line
    secret = cookies.get(session_cookie)
    if not secret or duplicate_cookie(cookies):
        return None
    return _parameters(query.encode("latin-1").decode()), secret


def init_app(app: Flask) -> None:
    turns = database.take_turns(app, [*DIRECT, AUTHORIZE])
    app.wsgi_app = DirectFirst(app, app.wsgi_app, turns)  # type: ignore[method-assign]
