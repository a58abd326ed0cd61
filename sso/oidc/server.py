"""The Authlib authorization server, fitted to our stores and our request rules."""

from __future__ import annotations

import base64
import binascii
import json as _json
import logging
import re
from typing import Any
from urllib.parse import unquote

import orjson
from authlib.integrations.flask_oauth2 import AuthorizationServer as FlaskAuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError, OAuth2Request
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from flask import Response
from flask import request as flask_request
from flask.json.provider import _default as _flask_default
from werkzeug.datastructures import MultiDict

from ..extensions import db
from . import clients
from .models import Client

log = logging.getLogger(__name__)

CLIENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
NO_STORE = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
FORM = "application/x-www-form-urlencoded"
CORS = ("Access-Control-Allow-Origin", "*")
#: Endpoints a single-page app calls from the browser; they use no cookies, so any origin may.
CORS_ENDPOINTS = frozenset({"oidc.discovery", "oidc.jwks", "oidc.token", "oidc.userinfo",
                            "oidc.revoke"})


class Payload(OAuth2Payload):
    """Request parameters from exactly one place (the query, or the form body)."""

    def __init__(self, data: MultiDict[str, str]) -> None:
        self._data = data

    @property
    def data(self) -> MultiDict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return {key: self._data.getlist(key) for key in self._data}


class ProtocolRequest(OAuth2Request):
    """Authlib's request, without its transport check.

    Authlib refuses any request whose URL is not https unless an environment variable is set.
    Behind a TLS-terminating proxy the URL the app sees is http, so transport security is
    enforced where it is configured instead: ``SSO_ISSUER`` must be https in production.
    """

    def __init__(self, method: str, uri: str | None, headers: Any, params: MultiDict[str, str],
                 form: MultiDict[str, str]) -> None:
        self.method = method
        self._uri = uri
        self.headers = headers
        self._body = None
        self.payload = Payload(params)
        self._form = form
        self.client = None
        self.auth_method = None
        self.user = None
        self.authorization_code = None
        self.refresh_token = None
        self.credential = None
        self._scope = None

    @property
    def uri(self) -> str:
        """The request URL, rebuilt only if asked for (Authlib's grants never ask)."""
        if self._uri is None:
            self._uri = flask_request.url
        return self._uri

    @property
    def args(self) -> MultiDict[str, str]:
        return self.payload.data

    @property
    def form(self) -> MultiDict[str, str]:
        return self._form


def current_request(params: MultiDict[str, str] | None = None) -> ProtocolRequest:
    """Wrap the Flask request; ``params`` replaces its parameters (a resumed flow)."""
    if params is None:
        params = flask_request.form if flask_request.method == "POST" else flask_request.args
    return ProtocolRequest(flask_request.method, None, flask_request.headers,
                           params, flask_request.form)


class AuthorizationServer(FlaskAuthorizationServer):
    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return current_request()

    def handle_response(self, status_code: int, payload: Any, headers: Any) -> Response:
        """Authlib's answers (the grants' tokens and errors): JSON as every other answer of
        the protocol is written (:func:`answer_body`; Authlib's own has spaces after its
        separators and no final newline)."""
        if isinstance(payload, dict):
            payload = answer_body(payload)
        if status_code != 302:
            named = {name.lower() for name, _ in headers}
            headers = [*headers, *(pair for pair in NO_STORE if pair[0].lower() not in named)]
        return Response(payload, status=status_code, headers=headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Authlib's blinker signals are not used; the audit log records what matters."""


def oauth_error(error: OAuth2Error) -> Response:
    """An OAuth error as JSON (RFC 6749 §5.2), with the headers the error carries."""
    status, body, headers = error()
    response = json_response(body, status)
    for name, value in headers:
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def dumps(payload: Any, **compact: Any) -> str:
    """JSON as Flask's default provider writes it (sorted keys, ASCII, Flask's conversions of
    dates and the like), without its two context lookups and its keyword merging per call:
    this runs on every token, introspection and UserInfo answer."""
    return _json.dumps(payload, sort_keys=True, default=_flask_default, **compact)


#: The headers of every JSON answer of the protocol.
JSON_NO_STORE = [("Content-Type", "application/json"), *NO_STORE]
_ANSWER_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
                   | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS)


def answer_body(payload: Any) -> bytes:
    """A JSON answer's body as Flask's ``jsonify`` writes it: compact, sorted keys, ASCII,
    Flask's conversions, a final newline. orjson writes the same bytes in a fifth of the
    time wherever they are ASCII, as a token answer's are; an answer with other characters
    (a user's name in Chinese) or a value orjson does not take is written by ``json``."""
    try:
        body: bytes = orjson.dumps(payload, default=_flask_default, option=_ANSWER_OPTIONS)
    except TypeError:
        body = b""
    if not body or not body.isascii():
        body = (dumps(payload, separators=(",", ":")) + "\n").encode()
    return body


def json_response(payload: Any, status: int = 200) -> Response:
    """JSON that no cache may keep: Flask's ``jsonify`` (:func:`answer_body`), built at
    once."""
    return Response(answer_body(payload), status=status, headers=JSON_NO_STORE)


def query_client(client_id: str | None) -> Client | None:
    if not client_id or not CLIENT_ID_PATTERN.match(client_id):
        return None
    client = db.session.get(Client, client_id)
    return None if client is None or client.disabled_at is not None else client


def query_cached_client(client_id: str | None) -> Client | None:
    """Authlib's client lookup: a read-only snapshot from the worker's cache."""
    if not client_id or not CLIENT_ID_PATTERN.match(client_id):
        return None
    client = clients.cached(client_id)
    return None if client is None or client.disabled_at is not None else client


def _basic_credentials(request: OAuth2Request) -> tuple[str | None, str | None]:
    """Decode ``Authorization: Basic`` as RFC 6749 §2.3.1 says (form-encoded, then base64)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidClientError(status_code=401,
                                 description="Malformed Basic credentials.") from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClientError(status_code=401, description="Malformed Basic credentials.")
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def authenticate_basic(query: Any, request: OAuth2Request) -> Client | None:
    client_id, secret = _basic_credentials(request)
    if client_id is None:
        return None
    client = query(client_id)
    if client is not None and secret and client.check_client_secret(secret):
        return client  # type: ignore[no-any-return]
    raise InvalidClientError(status_code=401, description="Client authentication failed.")


def authenticate_post(query: Any, request: OAuth2Request) -> Client | None:
    client_id = request.form.get("client_id")
    secret = request.form.get("client_secret")
    if not client_id or secret is None:
        return None
    client = query(client_id)
    if client is not None and client.check_client_secret(secret):
        return client  # type: ignore[no-any-return]
    raise InvalidClientError(status_code=401, description="Client authentication failed.")


def authenticate_none(query: Any, request: OAuth2Request) -> Client | None:
    client_id = request.form.get("client_id")
    if not client_id or "client_secret" in request.form or "Authorization" in request.headers:
        return None
    client = query(client_id)
    if client is None:
        raise InvalidClientError(status_code=401, description="Client authentication failed.")
    return client  # type: ignore[no-any-return]


def check_single_auth_method(request: OAuth2Request) -> None:
    """RFC 6749 §2.3: a client MUST NOT use more than one authentication method at once."""
    if "Authorization" in request.headers and "client_secret" in request.form:
        raise InvalidRequestError("Use one client authentication method, not two.")


def build_server() -> AuthorizationServer:
    server = AuthorizationServer()
    server._query_client = query_cached_client
    server._save_token = lambda token, request: None
    server.register_client_auth_method("client_secret_basic", authenticate_basic)
    server.register_client_auth_method("client_secret_post", authenticate_post)
    server.register_client_auth_method("none", authenticate_none)
    return server
