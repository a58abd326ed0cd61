"""The published documents, discovery (OpenID Connect Discovery 1.0, RFC 8414) and the JWKS
(RFC 7517): the one implementation of their endpoints.

They are the same bytes for every caller until a key rotation, and apps and libraries fetch
them often (some on every token check). :func:`answer` makes the whole answer: the body or a
304 for a matching ``If-None-Match``, the ETag, ``Cache-Control``, CORS and the security
headers. A request that carries nothing but its path (GET or HEAD, no query string, no
cookies) is answered by :class:`DocumentsFirst` in front of Flask, with the request id, the
access-log line and the metrics the Flask hooks would give it, at a fraction of the cost
(docs/performance.md). Every other request for them (a query string, cookies to check for
tossing, a JWKS whose freshness check is due and may read the database) goes on to the Flask
routes, which call :func:`answer` too. ``tests/oidc/test_documents.py`` holds both ways to the
same headers.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.http import parse_etags

from .. import logs, metrics
from ..web import HSTS, SECURITY_HEADERS
from .server import CORS

#: Path -> (endpoint name, seconds a cache may keep it).
DOCUMENTS = {
    "/.well-known/openid-configuration": ("oidc.discovery", 3600),
    "/.well-known/oauth-authorization-server": ("oidc.discovery", 3600),
    "/jwks.json": ("oidc.jwks", 300),
}
_STATUS_LINES = {200: "200 OK", 304: "304 NOT MODIFIED"}


@functools.lru_cache(maxsize=8)
def etag_of(body: bytes) -> str:
    """The ETag of a document; it changes only with the document (a key rotation)."""
    return hashlib.sha256(body).hexdigest()[:32]


def answer(body: bytes, max_age: int, if_none_match: str | None, *, secure: bool
           ) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of the answer to a request for the document ``body``."""
    etag = etag_of(body)
    headers = [("ETag", f'"{etag}"'), ("Cache-Control", f"public, max-age={max_age}"), CORS,
               *SECURITY_HEADERS]
    if secure:
        headers.append(HSTS)
    if if_none_match and etag in parse_etags(if_none_match):
        return 304, headers, b""
    return 200, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                 *headers], body


def published(app: Flask, endpoint: str) -> bytes | None:
    """The document as this process has it, or None for the JWKS while its freshness check
    is due (the key store then reads Redis or the database, inside a request)."""
    if endpoint == "oidc.discovery":
        return bytes(app.extensions["sso_discovery"])
    return app.extensions["sso_keys"].jwks_if_fresh()


class DocumentsFirst:
    """WSGI layer in front of Flask that answers the bare requests for the documents."""

    def __init__(self, app: Flask, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.secure = bool(app.config["SESSION_COOKIE_SECURE"])

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        route = DOCUMENTS.get(environ.get("PATH_INFO", ""))
        method = environ.get("REQUEST_METHOD")
        if (route is None or method not in ("GET", "HEAD") or environ.get("QUERY_STRING")
                or "HTTP_COOKIE" in environ):
            return self.wsgi_app(environ, start_response)
        endpoint, max_age = route
        body = published(self.app, endpoint)
        if body is None:
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        request_id = logs.request_id_from(environ.get("HTTP_X_REQUEST_ID"))
        status, headers, body = answer(body, max_age, environ.get("HTTP_IF_NONE_MATCH"),
                                       secure=self.secure)
        headers.append((logs.HEADER, request_id))
        start_response(_STATUS_LINES[status], headers)
        token = logs.serving(request_id)
        try:
            logs.access(method, environ["PATH_INFO"], status, started,
                        environ.get("REMOTE_ADDR"))
        finally:
            logs.served(token)
        metrics.observe(endpoint, status, started)
        return [b"" if method == "HEAD" else body]


def init_app(app: Flask) -> None:
    app.wsgi_app = DocumentsFirst(app, app.wsgi_app)  # type: ignore[method-assign]
