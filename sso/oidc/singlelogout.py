"""Single logout: the apps a session signed in to hear that it ended.

* OpenID Connect Back-Channel Logout 1.0: for each app the session reached that registered a
  ``backchannel_logout_uri``, a logout token (a JWT with ``typ: logout+jwt``, ``iss aud iat
  exp jti events sid sub``, never a ``nonce``) is signed when the session ends, whatever ended
  it (sign-out, the user on the account page, an admin, a password change or reset, a
  second-factor reset, the idle or absolute timeout), and written to the outbox in the same
  transaction. The outbox's delivery loop posts it (``logout_token=...`` as a form) with
  retries and back-off, so a slow or failing app never holds the user's logout page; a token
  is given up once it has expired, since the app must refuse it by then.
* OpenID Connect Front-Channel Logout 1.0: the logout page loads each reached app's
  ``frontchannel_logout_uri`` (with ``iss`` and ``sid``) in an invisible iframe; that page's
  CSP lets frames come from those origins only (:func:`frontchannel_uris`).
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from authlib.common.urls import add_params_to_uri
from flask import Flask, current_app

from .. import outbound, outbox
from ..audit import Origin
from ..dbtypes import utcnow
from ..outbox import GiveUp, OutboxMessage
from ..sessions import service as sessions
from ..sessions.models import SSOSession
from .keys import encode_jws
from .models import Client

log = logging.getLogger(__name__)

LOGOUT_TYPE = "logout+jwt"
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
CHANNEL = "logout"
#: A logout token is valid (and retried) this long; an app must refuse it afterwards.
LOGOUT_TOKEN_TTL = 2 * 3600
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class LogoutURIError(ValueError):
    """A logout URI this provider will not use; the message is for the admin."""


def check_logout_uri(uri: str, what: str) -> str:
    """An https URL, or plain http to a loopback address, without a fragment (both specs
    forbid one) or credentials. The back-channel URI is called by this provider, so it is
    held to ``sso.outbound.check_url`` too (no private or metadata addresses unless
    ``SSO_OUTBOUND_ALLOW`` lists them); a front-channel URI is loaded by the browser."""
    uri = uri.strip()
    if what.startswith("backchannel"):
        config = current_app.config
        try:
            return outbound.check_url(uri, dev=outbound.development(config),
                                      allow=outbound.allow_list(config),
                                      what=what)
        except outbound.EndpointRefused as error:
            raise LogoutURIError(str(error)) from None
    parts = urlsplit(uri)
    if len(uri) > 500 or parts.fragment or "#" in uri or not parts.hostname or parts.username:
        raise LogoutURIError(f"{what}: an absolute URL without fragment or credentials")
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        return uri
    raise LogoutURIError(f"{what}: use https (plain http only for 127.0.0.1)")


def logout_token(client: Client, session: SSOSession, now: datetime) -> tuple[str, str]:
    """Sign one logout token for ``client`` about ``session``; return it and its ``jti``."""
    issuer = current_app.config["ISSUER"]
    iat = int(now.timestamp())
    jti = secrets.token_urlsafe(16)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": client.client_id,
        "iat": iat,
        "exp": iat + LOGOUT_TOKEN_TTL,
        "jti": jti,
        "sub": session.user.subject,
        "sid": session.id,
        "events": {LOGOUT_EVENT: {}},
    }
    key = current_app.extensions["sso_keys"].active(client.id_token_signed_response_alg
                                                    or "RS256")
    return encode_jws(key, claims, typ=LOGOUT_TYPE), jti


def reached_clients(session: SSOSession) -> list[Client]:
    from .clients import get  # noqa: PLC0415

    found = [get(client_id) for client_id in session.client_ids or []]
    return [client for client in found if client is not None]


def tell_apps(session: SSOSession, _origin: Origin | None = None) -> int:
    """Queue a logout token for every reached app with a back-channel URI; return how many."""
    now = utcnow()
    queued = 0
    for client in reached_clients(session):
        if not client.backchannel_logout_uri:
            continue
        token, jti = logout_token(client, session, now)
        outbox.enqueue(CHANNEL, "backchannel-logout", client.backchannel_logout_uri,
                       body_text=token, user_id=session.user_id,
                       payload={"client_id": client.client_id, "sid": session.id, "jti": jti,
                                "exp": now.timestamp() + LOGOUT_TOKEN_TTL,
                                "reason": session.end_reason})
        queued += 1
    from .signals import SESSION_REVOKED, signal  # noqa: PLC0415

    signal(session.user, SESSION_REVOKED,
           {"reason_admin": {"en": f"session ended: {session.end_reason}"}},
           client_ids=list(session.client_ids or []), now=now)
    return queued


def frontchannel_uris(session: SSOSession) -> list[str]:
    """The front-channel logout URIs of the apps ``session`` reached, with ``iss`` and ``sid``
    where the app asked for them (Front-Channel Logout 1.0 §2)."""
    issuer = current_app.config["ISSUER"]
    uris = []
    for client in reached_clients(session):
        uri = client.frontchannel_logout_uri
        if not uri:
            continue
        if client.frontchannel_logout_session_required:
            uri = add_params_to_uri(uri, [("iss", issuer), ("sid", session.id)])
        uris.append(uri)
    return uris


def post(message: OutboxMessage, config: Any) -> None:
    """POST one logout token (Back-Channel Logout 1.0 §2.5) through ``sso.outbound`` (a total
    deadline, no redirects, the address checked again); 200 or 204 is success."""
    if float(message.payload.get("exp", 0)) <= utcnow().timestamp():
        raise GiveUp("the logout token expired before the app took it")
    body = urlencode({"logout_token": message.body_text or ""}).encode("ascii")
    try:
        answer = outbound.post(
            message.recipient, body, {"Content-Type": "application/x-www-form-urlencoded",
                                      "Cache-Control": "no-store"},
            deadline=float(config.get("EVENTS_TIMEOUT", 5)), config=config, max_bytes=4096,
            wait_for_slot=not config.get("OUTBOUND_INLINE"))
    except outbound.EndpointRefused as error:
        raise RuntimeError(f"back-channel logout URI refused: {error}") from None
    if answer.status not in (200, 204):
        raise RuntimeError(f"back-channel logout URI answered HTTP {answer.status}")


def init_app(app: Flask) -> None:
    outbox.register_transport(CHANNEL, lambda config: post)
    sessions.on_end(app, tell_apps)
