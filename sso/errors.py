"""Error pages in the user's language, JSON errors for the protocol's API endpoints."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis
from flask import Flask, current_app, jsonify, render_template, request
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    MethodNotAllowed,
    ServiceUnavailable,
)
from werkzeug.wrappers import Response

from .i18n import gettext as _

log = logging.getLogger(__name__)

JSON_ENDPOINTS_EXTENSION = "sso_json_endpoints"


def speaks_json(app: Flask, endpoints: Iterable[str]) -> None:
    """Answer errors on these endpoints in JSON (they serve programs, not people)."""
    app.extensions[JSON_ENDPOINTS_EXTENSION].update(endpoints)


def _messages() -> dict[int, tuple[str, str]]:
    return {
        400: (_("Bad request"), _("The request could not be understood.")),
        403: (_("Forbidden"), _("You are not allowed to do this.")),
        404: (_("Not found"), _("There is nothing at this address.")),
        405: (_("Method not allowed"), _("This address does not accept that method.")),
        413: (_("Request too large"), _("The request is larger than this service accepts.")),
        429: (_("Too many requests"), _("Please wait a moment and try again.")),
        500: (_("Something went wrong"), _("The error has been logged. Please try again.")),
        503: (_("Temporarily unavailable"),
              _("A service this page needs is not reachable. Please try again shortly.")),
    }


def render_error(status: int, title: str | None = None, message: str | None = None) -> Response:
    default_title, default_message = _messages().get(status, _messages()[400])
    html = render_template(
        "error.html", title=title or default_title, message=message or default_message,
        status=status,
    )
    return Response(html, status=status, mimetype="text/html")


def _endpoint(error: HTTPException) -> str | None:
    """The endpoint of the request; for a refused method, the one its path belongs to."""
    if request.endpoint or not isinstance(error, MethodNotAllowed) or not error.valid_methods:
        return request.endpoint
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        endpoint, _args = adapter.match(method=error.valid_methods[0])
    except HTTPException:
        return None
    return str(endpoint)


def _handle_http(error: HTTPException) -> Response:
    status = error.code or 500
    if _endpoint(error) in current_app.extensions[JSON_ENDPOINTS_EXTENSION]:
        response = jsonify(error="invalid_request" if status < 500 else "server_error",
                           error_description=error.name)
        response.status_code = status
        response.headers["Cache-Control"] = "no-store"  # RFC 6749 §5.1, errors included
    else:
        message = None
        if status == 400 and error.description == "csrf":
            message = _("The form expired. Go back, reload the page and try again.")
        response = render_error(status, message=message)
    if allowed := error.get_response().allow:
        response.headers["Allow"] = ", ".join(allowed)
    return response


def _handle_redis(error: redis.RedisError) -> Response:
    log.error("Redis unavailable: %s", error)
    return _handle_http(ServiceUnavailable())


def _handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled error on %s", request.path)
    return _handle_http(InternalServerError())


def init_app(app: Flask) -> None:
    app.extensions[JSON_ENDPOINTS_EXTENSION] = set()
    app.register_error_handler(HTTPException, _handle_http)
    app.register_error_handler(redis.RedisError, _handle_redis)
    if not app.config.get("PROPAGATE_EXCEPTIONS"):
        app.register_error_handler(Exception, _handle_unexpected)
