"""Error pages in the user's language, JSON errors for the protocol's API endpoints."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable
from functools import cache

import redis
from flask import Flask, current_app, jsonify, render_template, request
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    MethodNotAllowed,
    ServiceUnavailable,
)
from werkzeug.wrappers import Response

from .extensions import db
from .i18n import current_locale, is_translation
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


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "mark, translate later"
    """Mark ``message`` for the catalogues; it is translated where it is shown."""
    return message


#: The error descriptions the protocol layer (ours and Authlib's) may put on the error page:
#: the page translates them (:func:`describe_error`); the app gets them in English, as
#: RFC 6749 §4.1.2.1 asks of ``error_description``. ``%(x)s`` stands for a variable part.
PROTOCOL_DESCRIPTIONS = (
    N_("The client does not exist on this server."),
    N_("'redirect_uri' is not registered for this client."),
    N_("Missing 'redirect_uri'."),
    N_("Missing 'redirect_uri' in request."),
    N_("Missing 'client_id' parameter."),
    N_("Redirect URI %(uri)s is not supported by client."),
    N_("Parameter '%(name)s' is repeated."),
    N_("Parameter '%(name)s' is too long."),
    N_("Only 'response_mode=query' is supported."),
    N_("Missing 'response_type'."),
    N_("Only 'response_type=code' is supported."),
    N_("The response type '%(type)s' is not supported by the server."),
    N_("Unsupported 'prompt' value."),
    N_("'prompt=none' cannot be combined with other values."),
    N_("'max_age' must be a non-negative integer."),
    N_("'id_token_hint' is not an ID token this provider issued to this client."),
    N_("None of the requested scopes is allowed for this client."),
    N_("The client may not request that scope."),
    N_("The requested scope is invalid, unknown, or malformed."),
    N_("Request objects are not supported."),
    N_("'request_uri' is not supported."),
    N_("'registration' is not supported."),
    N_("Public clients must use PKCE: send 'code_challenge'."),
    N_("Only 'code_challenge_method=S256' is supported."),
    N_("'nonce' is too long."),
    N_("The user declined."),
    N_("The request was invalid."),
)


@cache
def _description_patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    patterns = []
    for source in PROTOCOL_DESCRIPTIONS:
        if "%(" in source:
            names = re.findall(r"%\((\w+)\)s", source)
            parts = re.split(r"%\(\w+\)s", source)
            regex = "".join(re.escape(part) + (f"(?P<{names[i]}>.+?)" if i < len(names) else "")
                            for i, part in enumerate(parts))
            patterns.append((re.compile(f"^{regex}$"), source))
    return tuple(patterns)


def describe_error(description: str | None) -> str:
    """A protocol error's description in the reader's language (the library writes English).

    A description no catalogue knows is shown as it is to English readers; others get the
    general sentence, and the error code beside it says the rest."""
    text = str(description or "")
    if is_translation(text):
        return text
    if text in PROTOCOL_DESCRIPTIONS:
        return _(text)
    for pattern, source in _description_patterns():
        if found := pattern.match(text):
            return _(source, **found.groupdict())
    if current_locale() == "en" and text:
        return text
    return _("The request was invalid.")


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
        code = ("invalid_request" if status < 500 else
                "temporarily_unavailable" if status == 503 else "server_error")
        response = jsonify(error=code, error_description=error.name)
        response.status_code = status
        response.headers["Cache-Control"] = "no-store"  # RFC 6749 §5.1, errors included
    else:
        message = None
        if status == 400 and error.description == "csrf":
            message = _("The form expired. Go back, reload the page and try again.")
        elif status == 400 and error.description == "duplicate_cookie":
            message = _("Your browser sent two cookies with the same name: one was set by "
                        "another site. Clear this site's cookies and try again.")
        response = render_error(status, message=message)
    if allowed := error.get_response().allow:
        response.headers["Allow"] = ", ".join(allowed)
    return response


def _handle_redis(error: redis.RedisError) -> Response:
    log.error("Redis unavailable: %s", error)
    return _handle_http(ServiceUnavailable())


def _handle_database(error: Exception) -> Response:
    """A database that is down, frozen or out of connections: 503 at once, the client may
    retry (``sso.database`` bounds how long it takes to get here)."""
    log.error("database unavailable: %s", str(error).splitlines()[0][:300])
    with contextlib.suppress(Exception):  # the session is discarded at teardown anyway
        db.session.rollback()
    response = _handle_http(ServiceUnavailable())
    response.headers["Retry-After"] = "5"
    return response


def _handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled error on %s", request.path)
    return _handle_http(InternalServerError())


def init_app(app: Flask) -> None:
    app.extensions[JSON_ENDPOINTS_EXTENSION] = set()
    app.jinja_env.globals["describe_error"] = describe_error
    app.register_error_handler(HTTPException, _handle_http)
    app.register_error_handler(redis.RedisError, _handle_redis)
    for database_error in (sa_exc.OperationalError, sa_exc.TimeoutError,
                           sa_exc.DisconnectionError, sa_exc.InterfaceError):
        app.register_error_handler(database_error, _handle_database)
    if not app.config.get("PROPAGATE_EXCEPTIONS"):
        app.register_error_handler(Exception, _handle_unexpected)
