"""OpenID Connect Client-Initiated Backchannel Authentication (CIBA Core 1.0), poll and ping.

A client (a thick-client ERP, a call-centre tool) asks at the backchannel authentication
endpoint to sign a user in; the user approves on their authentication device, the phone
channel of scan-to-sign-in (which reaches these requests through :mod:`.public` only); the
client then gets tokens at the token endpoint with ``urn:openid:params:grant-type:ciba``.

A request is one Redis hash ``{prefix}ciba:r:{sha256(auth_req_id)}`` living
``requested_expiry`` seconds, and a per-user sorted set of pending ids for the phone. Only
the hash of ``auth_req_id`` names a request on the phone's side.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Error,
    UnauthorizedClientError,
    grants,
)
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oidc.core.grants.util import is_openid_scope
from flask import current_app
from werkzeug.wrappers import Response

from .. import audit
from ..extensions import db
from ..security import hash_token
from ..users.models import User
from ..users.service import find_by_login
from ..web import origin
from .grants import _IssuesTokens, token_service
from .models import Client
from .tokens import GrantFacts

log = logging.getLogger(__name__)

GRANT_TYPE = "urn:openid:params:grant-type:ciba"
POLL, PING = "poll", "ping"
MODES = (POLL, PING)
INTERVAL = 5
DEFAULT_EXPIRY = 120
MAX_EXPIRY = 600
PENDING, APPROVED, DENIED, CONSUMED = "pending", "approved", "denied", "consumed"


class CIBAError(OAuth2Error):
    status_code = 400

    def __init__(self, error: str, description: str = "", status_code: int = 400) -> None:
        super().__init__(description=description, status_code=status_code)
        self.error = error


@dataclass(frozen=True)
class Pending:
    """A request as the phone shows it (no auth_req_id: only its hash)."""

    id: str
    client_id: str
    client_name: str
    binding_message: str
    scope: str
    created_at: float
    expires_at: float


def _redis() -> Any:
    return current_app.extensions["sso_redis"]


def _key(ref: str) -> str:
    return _redis().key("ciba", "r", ref)


def _user_key(user_id: int) -> str:
    return _redis().key("ciba", "u", str(user_id))


def _client_redis() -> Any:
    return _redis().client


# The backchannel authentication endpoint (CIBA §7).

def _user_of(params: Any, client: Client) -> User:
    hints = [name for name in ("login_hint", "id_token_hint", "login_hint_token")
             if params.get(name)]
    if len(hints) != 1:
        raise InvalidRequestError("Send exactly one of 'login_hint' and 'id_token_hint'.")
    if hints[0] == "login_hint_token":
        raise InvalidRequestError("'login_hint_token' is not supported.")
    if hints[0] == "login_hint":
        user = find_by_login(params["login_hint"])
    else:
        claims = token_service().decode_id_token_hint(params["id_token_hint"])
        if claims is None:
            raise InvalidRequestError("'id_token_hint' is not an ID token of this provider.")
        user = db.session.scalars(db.select(User).where(User.subject == claims["sub"])).first()
    if user is None or user.status != "active":
        raise CIBAError("unknown_user_id", "No active user matches the hint.")
    return user


def authenticate(params: Any) -> Response:
    """``POST /bc-authorize``: validate, store, and answer ``auth_req_id``."""
    from .server import current_request, oauth_error  # noqa: PLC0415

    server = current_app.extensions["sso_authorization_server"]
    try:
        client = server.authenticate_client(current_request(params),
                                            ["client_secret_basic", "client_secret_post"],
                                            "backchannel_authentication")
        mode = client.ciba_mode
        if mode not in MODES or GRANT_TYPE not in (client.grant_types or []):
            raise UnauthorizedClientError("The client is not registered for CIBA.")
        scope = params.get("scope", "")
        if not is_openid_scope(scope):
            raise InvalidRequestError("'scope' must include 'openid'.")
        wanted = scope.split()
        if any(s not in client.scopes() for s in wanted):
            raise CIBAError("invalid_scope", "The client may not request that scope.")
        if params.get("user_code"):
            raise InvalidRequestError("'user_code' is not supported.")
        message = params.get("binding_message", "")
        if len(message) > 64 or any(ord(c) < 32 for c in message):
            raise CIBAError("invalid_binding_message",
                            "'binding_message' must be at most 64 printable characters.")
        expiry = params.get("requested_expiry", "")
        try:
            expires_in = int(expiry) if expiry else DEFAULT_EXPIRY
        except ValueError:
            raise InvalidRequestError("'requested_expiry' must be a number of seconds.") from None
        if not 1 <= expires_in <= MAX_EXPIRY:
            raise InvalidRequestError(f"'requested_expiry' must be 1-{MAX_EXPIRY} seconds.")
        token = params.get("client_notification_token", "")
        if mode == PING and not token:
            raise InvalidRequestError("Ping mode needs 'client_notification_token'.")
        if len(token) > 1024:
            raise InvalidRequestError("'client_notification_token' is too long.")
        user = _user_of(params, client)
    except OAuth2Error as error:
        return oauth_error(error)
    auth_req_id = secrets.token_urlsafe(32)
    ref = hash_token(auth_req_id)[:43]
    now = time.time()
    fields = {"state": PENDING, "client_id": client.client_id, "client_name": client.name,
              "user_id": str(user.id), "scope": " ".join(dict.fromkeys(wanted)),
              "binding_message": message, "mode": mode, "notify_token": token,
              "auth_req_id": auth_req_id if mode == PING else "", "created_at": repr(now),
              "expires_at": repr(now + expires_in), "interval": str(INTERVAL),
              "last_poll": "0"}
    pipe = _client_redis().pipeline(transaction=True)
    pipe.hset(_key(ref), mapping=fields)
    pipe.expire(_key(ref), expires_in)
    pipe.zadd(_user_key(user.id), {ref: now + expires_in})
    pipe.zremrangebyscore(_user_key(user.id), 0, now)
    pipe.expire(_user_key(user.id), MAX_EXPIRY)
    pipe.execute()
    audit.record("ciba.request", origin=origin(), user_id=user.id, client_id=client.client_id,
                 mode=mode, request=ref[:8])
    db.session.commit()
    body = {"auth_req_id": auth_req_id, "expires_in": expires_in}
    if mode == POLL:
        body["interval"] = INTERVAL
    response = Response(json.dumps(body), mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


# The phone's side (through sso.oidc.public).

def pending_for(user_id: int) -> list[Pending]:
    """The user's requests still waiting for an answer, newest first."""
    redis_client = _client_redis()
    refs = redis_client.zrangebyscore(_user_key(user_id), time.time(), "+inf")
    found = []
    for raw in refs:
        ref = raw.decode()
        item = get_pending(user_id, ref)
        if item is not None:
            found.append(item)
    return sorted(found, key=lambda p: -p.created_at)


def get_pending(user_id: int, ref: str) -> Pending | None:
    if not ref or len(ref) != 43 or not all(c in "0123456789abcdef" for c in ref):
        return None
    values = {k.decode(): v.decode() for k, v in _client_redis().hgetall(_key(ref)).items()}
    if values.get("state") != PENDING or values.get("user_id") != str(user_id):
        return None
    return Pending(ref, values["client_id"], values["client_name"], values["binding_message"],
                   values["scope"], float(values["created_at"]), float(values["expires_at"]))


_DECIDE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if redis.call('HGET', KEYS[1], 'user_id') ~= ARGV[1] then return 'missing' end
if state ~= 'pending' then return state end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'amr', ARGV[3], 'auth_time', ARGV[4],
           'session_id', ARGV[5])
redis.call('ZREM', KEYS[2], ARGV[6])
return 'ok'
"""


def decide(user_id: int, ref: str, approve: bool, *, amr: list[str], auth_time: datetime,
           session_id: str | None, alarm: bool = False) -> str:
    """Approve or deny one request for its user; "ok", or why not. A ping-mode client is
    notified (CIBA §10.2) as soon as the answer is in."""
    if get_pending(user_id, ref) is None:
        return "missing"
    result = _client_redis().eval(
        _DECIDE, 2, _key(ref), _user_key(user_id), str(user_id),
        APPROVED if approve else DENIED, " ".join(amr), repr(auth_time.timestamp()),
        session_id or "", ref)
    result = result.decode() if isinstance(result, bytes) else str(result)
    values = {k.decode(): v.decode() for k, v in _client_redis().hgetall(_key(ref)).items()}
    outcome = audit.SUCCESS if result == "ok" else audit.FAILURE
    audit.record("ciba.approve" if approve else "ciba.deny", "alarm" if alarm else outcome,
                 origin=origin(), user_id=user_id, client_id=values.get("client_id"),
                 request=ref[:8], result=result)
    if result == "ok" and values.get("mode") == PING:
        _notify(values)
    return result


def _notify(values: dict[str, str]) -> None:
    client = db.session.get(Client, values["client_id"])
    endpoint = client.ciba_notification_endpoint if client else None
    parts = urlsplit(endpoint or "")
    if not (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in
                                         ("127.0.0.1", "localhost", "::1"))):
        log.warning("CIBA client %s has no usable notification endpoint", values["client_id"])
        return
    body = json.dumps({"auth_req_id": values["auth_req_id"]}).encode()
    # The endpoint was checked at registration (https, or http to loopback).
    ping = urllib.request.Request(endpoint, data=body, method="POST", headers={  # noqa: S310
        "Content-Type": "application/json",
        "Authorization": f"Bearer {values['notify_token']}"})
    try:
        with urllib.request.urlopen(  # noqa: S310
                ping, timeout=current_app.config["EVENTS_TIMEOUT"]):
            pass
    except OSError as exc:  # the client polls anyway once it is back
        log.warning("CIBA ping to %s failed: %s", values["client_id"], exc)


# The token endpoint grant (CIBA §10.1, §11).

_CONSUME = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'expired_token' end
if redis.call('HGET', KEYS[1], 'client_id') ~= ARGV[1] then return 'invalid_grant' end
if state == 'consumed' then return 'invalid_grant' end
if state == 'denied' then return 'access_denied' end
if state == 'approved' then
  redis.call('HSET', KEYS[1], 'state', 'consumed')
  return 'ok'
end
local interval = tonumber(redis.call('HGET', KEYS[1], 'interval'))
local last = tonumber(redis.call('HGET', KEYS[1], 'last_poll'))
redis.call('HSET', KEYS[1], 'last_poll', ARGV[2])
if redis.call('HGET', KEYS[1], 'mode') == 'poll' and tonumber(ARGV[2]) - last < interval then
  redis.call('HSET', KEYS[1], 'interval', tostring(interval + 5))
  return 'slow_down'
end
return 'authorization_pending'
"""

_DESCRIPTIONS = {
    "expired_token": "The auth_req_id has expired; start a new request.",
    "invalid_grant": "Unknown or already used auth_req_id.",
    "access_denied": "The user denied the request.",
    "slow_down": "Polling too fast: wait 'interval' seconds longer.",
    "authorization_pending": "The user has not answered yet.",
}


class CIBAGrant(_IssuesTokens, grants.BaseGrant, grants.TokenEndpointMixin):
    GRANT_TYPE = GRANT_TYPE
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(GRANT_TYPE) or client.ciba_mode not in MODES:
            raise UnauthorizedClientError("The client is not registered for CIBA.")
        auth_req_id = self.request.payload.data.get("auth_req_id", "")
        if not auth_req_id or len(auth_req_id) > 128:
            raise InvalidRequestError("Missing 'auth_req_id'.")
        ref = hash_token(auth_req_id)[:43]
        result = _client_redis().eval(_CONSUME, 1, _key(ref), client.client_id,
                                      repr(time.time()))
        result = result.decode() if isinstance(result, bytes) else str(result)
        if result == "invalid_grant":
            raise InvalidGrantError(_DESCRIPTIONS[result])
        if result != "ok":
            raise CIBAError(result, _DESCRIPTIONS[result])
        values = {k.decode(): v.decode() for k, v in _client_redis().hgetall(_key(ref)).items()}
        user = db.session.get(User, int(values["user_id"]))
        if user is None or user.status != "active":
            raise CIBAError("access_denied", "The user can no longer sign in.")
        self.request.client = client
        self.request.user = user
        self.request.ciba = values

    @hooked
    def create_token_response(self) -> tuple[int, dict, list]:
        values = self.request.ciba
        amr = [a for a in values.get("amr", "").split() if a]
        facts = GrantFacts(
            grant_id=secrets.token_urlsafe(16), session_id=values.get("session_id") or None,
            auth_time=datetime.fromtimestamp(float(values.get("auth_time") or time.time()), UTC),
            acr=None, amr=amr)
        token = self.issue(self.request.client, self.request.user, values["scope"], facts)
        audit.record("token.issue", origin=origin(), user_id=self.request.user.id,
                     client_id=self.request.client.client_id, grant="ciba")
        return 200, token, self.TOKEN_RESPONSE_HEADER
