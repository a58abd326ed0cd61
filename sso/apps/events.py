"""App-account events sent to the app as Security Event Tokens (RFC 8417), pushed over HTTP
(RFC 8935) from the persistent outbox.

The SET is signed when the event happens and stored in the outbox, so every retry carries
the same ``jti`` and the app can drop duplicates. The request that caused the event tries
the first delivery at once, with a short timeout, so that an ERP has created its local
record before the user lands there; if the app is slow or down, the outbox retries with
back-off. A ``400`` with an RFC 8935 error code means the app refused this SET: retrying
cannot help, so the message is given up (and logged).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select

from .. import audit, outbound, outbox
from ..audit import Origin
from ..dbtypes import utcnow
from ..extensions import db
from ..oidc.public import SET_MEDIA_TYPE as MEDIA_TYPE
from ..oidc.public import Client, encode_set, user_claims
from ..outbox import GiveUp, OutboxMessage
from ..users.models import User

log = logging.getLogger(__name__)

#: Event type URIs. URNs of this provider's own namespace: they name the event, they are not
#: fetched, and they stay the same whatever the issuer's host name.
EVENT_PREFIX = "urn:sso:secevent:app-account:"
ACTIVATED = EVENT_PREFIX + "activated"
REFUSED = EVENT_PREFIX + "refused"
REVOKED = EVENT_PREFIX + "revoked"
EVENT_TYPES = (ACTIVATED, REFUSED, REVOKED)

#: RFC 8935 §2.4 error codes: the app read the SET and refused it.
REFUSAL_CODES = frozenset({"invalid_request", "invalid_key", "invalid_issuer",
                           "invalid_audience", "authentication_failed", "access_denied"})


class EventError(ValueError):
    """A request about app events that cannot be carried out; the message is for the admin."""


class EndpointError(EventError):
    """An events endpoint this provider will not post to."""


def check_endpoint(url: str, config: Any = None) -> str:
    """A URL this provider may post events to (``sso.outbound.check_url``): https, or plain
    http to a loopback address in development; no private or metadata address unless
    ``SSO_OUTBOUND_ALLOW`` lists it."""
    config = current_app.config if config is None else config
    try:
        return outbound.check_url(url.strip(), dev=outbound.development(config),
                                  allow=outbound.allow_list(config), what="events endpoint")
    except outbound.EndpointRefused as error:
        raise EndpointError(str(error)) from None


def enqueue(client: Client, user: User, event_type: str, details: dict[str, Any],
            now: datetime) -> OutboxMessage | None:
    """Sign the SET for ``event_type`` and queue it, if the app registered an events endpoint.

    The event payload carries the app account's facts and the user's claims that the app's
    scopes release (the same the ID token would), so the app can create or update its record
    without another round trip.
    """
    endpoint = client.events_endpoint
    if not endpoint:
        return None
    payload = {**details, "client_id": client.client_id,
               "user": user_claims(user, client.scopes(), client.client_id)}
    token, jti = encode_set(
        current_app.extensions["sso_keys"], issuer=current_app.config["ISSUER"],
        audience=client.client_id, subject=user.subject, events={event_type: payload},
        now=now, alg=client.id_token_signed_response_alg or "RS256",
    )
    purpose = "app-" + event_type.removeprefix(EVENT_PREFIX)
    return outbox.enqueue("event", purpose, endpoint, body_text=token,
                          payload={"jti": jti, "event": event_type,
                                   "client_id": client.client_id},
                          user_id=user.id)


def list_messages(client_id: str | None = None, status: str | None = None,
                  limit: int = 200) -> list[OutboxMessage]:
    """The newest event messages (of one app, in one state), for the operator."""
    query = (select(OutboxMessage).where(OutboxMessage.channel == "event")
             .order_by(OutboxMessage.id.desc()).limit(limit))
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    rows = db.session.scalars(query).all()
    return [m for m in rows if client_id is None or m.payload.get("client_id") == client_id]


def redeliver(message_id: int, origin: Origin | None = None) -> OutboxMessage:
    """Queue a given-up (or still waiting) event again, as new, e.g. once the app is fixed.

    The SET is the one signed at the time, with its ``jti``: an app that did get it drops it.
    """
    message = db.session.get(OutboxMessage, message_id)
    if message is None or message.channel != "event":
        raise EventError(f"no event message {message_id}")
    if message.status not in (outbox.DEAD, outbox.PENDING):
        raise EventError(f"event message {message_id} is {message.status}, not dead")
    message.status, message.attempts, message.last_error = outbox.PENDING, 0, None
    message.next_attempt_at, message.claimed_until = utcnow(), None
    outbound.reset_endpoint(message.recipient)
    audit.record("app.event_redeliver", origin=origin, user_id=message.user_id,
                 client_id=message.payload.get("client_id"), jti=message.payload.get("jti"))
    return message


def deliver_now(messages: Iterable[OutboxMessage | None]) -> None:
    """Try the first delivery of these (committed) messages now (``outbox.deliver_soon``)."""
    outbox.deliver_soon([m.id for m in messages if m is not None])


#: The most of an app's answer that is read (RFC 8935 error bodies are small).
ANSWER_CAP = 4096


def push(message: OutboxMessage, config: Any) -> None:
    """POST one SET (RFC 8935 §2) under a total deadline (``EVENTS_TIMEOUT``); 202 is
    success, a 3xx is not followed, anything else raises."""
    try:
        answer = outbound.post(
            message.recipient, (message.body_text or "").encode("ascii"),
            {"Content-Type": MEDIA_TYPE, "Accept": "application/json"},
            deadline=float(config.get("EVENTS_TIMEOUT", 5)), config=config,
            max_bytes=ANSWER_CAP, wait_for_slot=not config.get("OUTBOUND_INLINE"))
    except outbound.EndpointRefused as error:
        # Checked at registration; a name that now resolves to a private address lands here.
        raise RuntimeError(f"events endpoint refused: {error}") from None
    if answer.status == 400:
        refusal = _refusal(answer.body)
        if refusal:
            raise GiveUp(f"the app refused the SET: {refusal}")
    if answer.status != 202:
        raise RuntimeError(f"events endpoint answered HTTP {answer.status}, expected 202")


def _refusal(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("err") not in REFUSAL_CODES:
        return None
    return f"{data['err']}: {str(data.get('description', ''))[:200]}"


def register() -> None:
    outbox.register_transport("event", lambda config: push)
