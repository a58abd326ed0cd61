"""Consent (DESIGN.md §3 step 5): third-party apps ask once per scope set; first-party skip."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from .. import audit
from ..audit import Origin
from ..dbtypes import utcnow
from ..extensions import db
from ..flow import Interaction, Request
from ..sessions.models import SSOSession
from .models import Consent


def find(user_id: int, client_id: str) -> Consent | None:
    return db.session.scalar(
        select(Consent).where(Consent.user_id == user_id, Consent.client_id == client_id)
    )


def consent_step(request: Request, session: SSOSession | None, now: datetime
                 ) -> Interaction | None:
    """Third-party apps ask once per scope set (and again on ``prompt=consent``)."""
    if session is None:
        return None
    asked = "consent" in request.prompts
    if request.policy.first_party and not asked:
        return None
    consent = find(session.user_id, request.client_id)
    if consent is None:
        needed = True
    elif asked:
        needed = consent.granted_at < request.started_at
    else:
        needed = not set(request.scopes) <= set(consent.scope.split())
    return Interaction("oidc.consent", "consent_required") if needed else None


def grant(user_id: int, client_id: str, scopes: list[str], origin: Origin) -> None:
    """Remember that the user let this client have these scopes (adding to earlier ones)."""
    consent = find(user_id, client_id)
    if consent is None:
        consent = Consent(user_id=user_id, client_id=client_id, scope="")
        db.session.add(consent)
    merged = list(dict.fromkeys([*consent.scope.split(), *scopes]))
    consent.scope = " ".join(merged)
    consent.granted_at = utcnow()
    audit.record("consent.grant", origin=origin, user_id=user_id, client_id=client_id,
                 scope=consent.scope)


def deny(user_id: int, client_id: str, origin: Origin) -> None:
    audit.record("consent.deny", audit.FAILURE, origin=origin, user_id=user_id,
                 client_id=client_id)
