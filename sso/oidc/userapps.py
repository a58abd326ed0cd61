"""What a user gave each app, for the account page: consents and live grants (refresh-token
families, offline ones among them), and taking them back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select

from .. import audit
from ..audit import Origin
from ..dbtypes import utcnow
from ..extensions import db
from .models import Client, Consent, RefreshToken
from .tokens import revoke_grants


@dataclass
class Grant:
    """One live grant: a refresh-token family, with when it began and when it lapses."""

    family_id: str
    scope: str
    offline: bool
    started_at: datetime
    expires_at: datetime


@dataclass
class AppAccess:
    client: Client
    consent_scope: str | None = None
    grants: list[Grant] = field(default_factory=list)

    @property
    def offline_grants(self) -> list[Grant]:
        return [g for g in self.grants if g.offline]


def access_of(user_id: int, client_ids: list[str] | None = None) -> list[AppAccess]:
    """Every app with a consent or a live grant of the user, plus ``client_ids`` (apps the
    user has roles or sessions in), by name."""
    now = utcnow()
    found: dict[str, AppAccess] = {}

    def entry(client_id: str) -> AppAccess | None:
        if client_id not in found:
            client = db.session.get(Client, client_id)
            if client is None:
                return None
            found[client_id] = AppAccess(client)
        return found[client_id]

    for client_id in client_ids or []:
        entry(client_id)
    for consent in db.session.scalars(select(Consent).where(Consent.user_id == user_id)):
        if (access := entry(consent.client_id)) is not None:
            access.consent_scope = consent.scope
    live = db.session.scalars(
        select(RefreshToken).where(RefreshToken.user_id == user_id,
                                   RefreshToken.revoked_at.is_(None),
                                   RefreshToken.used_at.is_(None),
                                   RefreshToken.expires_at > now)
        .order_by(RefreshToken.created_at)
    ).all()
    for row in live:
        if (access := entry(row.client_id)) is not None:
            access.grants.append(Grant(row.family_id, row.scope, row.session_id is None,
                                       row.auth_time, row.expires_at))
    return sorted(found.values(), key=lambda a: a.client.name.lower())


def forget_app(user_id: int, client_id: str, origin: Origin | None = None) -> int:
    """The user takes back what they gave an app: its grants (offline ones too) are revoked
    and its consent forgotten (a third-party app asks again). Returns grants revoked."""
    revoked = revoke_grants(user_id, client_id=client_id, reason="user", origin=origin)
    db.session.execute(delete(Consent).where(Consent.user_id == user_id,
                                             Consent.client_id == client_id))
    audit.record("app.access_revoke", origin=origin, user_id=user_id, client_id=client_id,
                 grants_revoked=revoked)
    return revoked


def revoke_grant(user_id: int, family_id: str, origin: Origin | None = None) -> bool:
    """Revoke one grant of the user's (False if it is not theirs or not live)."""
    row = db.session.scalars(select(RefreshToken).where(
        RefreshToken.family_id == family_id, RefreshToken.user_id == user_id,
        RefreshToken.revoked_at.is_(None))).first()
    if row is None:
        return False
    from .tokens import revoke_family  # noqa: PLC0415

    revoke_family(family_id, reason="user", origin=origin, client_id=row.client_id,
                  user_id=user_id)
    return True
