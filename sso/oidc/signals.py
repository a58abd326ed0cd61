"""Shared Signals (OpenID Shared Signals Framework 1.0): CAEP ``session-revoked`` and
``credential-change`` and RISC ``account-disabled``, as Security Event Tokens signed with the
provider's keys and pushed (RFC 8935) to the apps that subscribed by registering an events
endpoint (``sso clients update CLIENT_ID --events-endpoint URL``).

They leave through the outbox's ``event`` channel like the app-account events, but never in
the request that caused them: the delivery loop sends them, so a slow app cannot hold a
sign-out or a password change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select

from .. import outbox
from ..dbtypes import utcnow
from ..extensions import db
from ..sessions.models import SSOSession
from ..users.groups import effective_client_ids
from ..users.models import User
from .models import Client, RefreshToken
from .secevent import encode_set

SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
CREDENTIAL_CHANGE = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
ACCOUNT_DISABLED = "https://schemas.openid.net/secevent/risc/event-type/account-disabled"


def subscribers(user: User, client_ids: list[str] | None = None) -> list[Client]:
    """Apps with an events endpoint that know the user: those in ``client_ids`` (a session's
    apps), else any the user signed in to, holds a grant at or has a role in."""
    if client_ids is None:
        found = set(db.session.scalars(select(RefreshToken.client_id).where(
            RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None)).distinct()))
        found.update(effective_client_ids(user))  # roles held directly or via a group
        for reached in db.session.scalars(select(SSOSession.client_ids).where(
                SSOSession.user_id == user.id)):
            found.update(reached or [])
        client_ids = sorted(found)
    clients = [db.session.get(Client, client_id) for client_id in client_ids]
    return [c for c in clients if c is not None and c.events_endpoint]


def signal(user: User, event_type: str, details: dict[str, Any], *,
           client_ids: list[str] | None = None, now: datetime | None = None) -> int:
    """Queue one SET of ``event_type`` for every subscribed app; return how many."""
    now = now or utcnow()
    sent = 0
    for client in subscribers(user, client_ids):
        token, jti = encode_set(
            current_app.extensions["sso_keys"], issuer=current_app.config["ISSUER"],
            audience=client.client_id, subject=user.subject,
            events={event_type: {"event_timestamp": int(now.timestamp()), **details}},
            now=now, alg=client.id_token_signed_response_alg or "RS256")
        outbox.enqueue("event", "signal-" + event_type.rsplit("/", 1)[-1],
                       client.events_endpoint, body_text=token, user_id=user.id,
                       payload={"jti": jti, "event": event_type,
                                "client_id": client.client_id, outbox.NOT_INLINE: True})
        sent += 1
    return sent
