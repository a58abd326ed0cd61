"""Open, find, step up and end SSO sessions. No Flask here: callers pass what they know."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select

from .. import audit
from ..audit import Origin
from ..dbtypes import utcnow
from ..extensions import db
from ..security import hash_token, new_token
from ..users.models import User
from .models import SSOSession

#: Authentication Context Class References this provider asserts (advertised in discovery).
ACR_SINGLE_FACTOR = "urn:sso:loa:1"
ACR_MULTI_FACTOR = "urn:sso:loa:2"
ACR_VALUES = (ACR_SINGLE_FACTOR, ACR_MULTI_FACTOR)
#: ``amr`` values (RFC 8176 where one exists) that count as a second factor.
SECOND_FACTORS = frozenset({"otp", "hwk", "swk", "sms"})


def acr_for(amr: list[str]) -> str:
    return ACR_MULTI_FACTOR if SECOND_FACTORS.intersection(amr) else ACR_SINGLE_FACTOR


def _merge_amr(existing: list[str], added: list[str]) -> list[str]:
    merged = list(dict.fromkeys([*existing, *added]))
    merged = [m for m in merged if m != "mfa"]
    if SECOND_FACTORS.intersection(merged) and len(merged) > 1:
        merged.append("mfa")
    return merged


def open_session(
    user: User,
    amr: list[str],
    *,
    lifetime: int,
    origin: Origin,
    now: datetime | None = None,
    previous: SSOSession | None = None,
) -> tuple[SSOSession, str]:
    """Sign ``user`` in; return the session and the secret for the browser's cookie.

    If the browser already holds a live session of the same user, it is stepped up in place
    (``amr`` merged, ``auth_time`` moved) so the ``sid`` the apps know stays the same; the
    cookie secret is replaced either way, which defeats session fixation.
    """
    now = now or utcnow()
    secret = new_token()
    if previous is not None and previous.user_id == user.id and previous.is_active(now):
        session = previous
        session.amr = _merge_amr(session.amr or [], amr)
        session.acr = acr_for(session.amr)
        session.auth_time = now
        session.token_hash = hash_token(secret)
        session.last_seen_at = now
        audit.record("session.step_up", origin=origin, user_id=user.id, session_id=session.id,
                     amr=session.amr)
        return session, secret
    if previous is not None and previous.is_active(now):
        end_session(previous, reason="replaced", origin=origin, now=now)
    merged = _merge_amr([], amr)
    session = SSOSession(
        id=new_token(nbytes=16),
        token_hash=hash_token(secret),
        user_id=user.id,
        user=user,
        created_at=now,
        auth_time=now,
        amr=merged,
        acr=acr_for(merged),
        last_seen_at=now,
        expires_at=now + timedelta(seconds=lifetime),
        ip=origin.ip,
        user_agent=(origin.user_agent or "")[:255] or None,
    )
    db.session.add(session)
    audit.record("session.open", origin=origin, user_id=user.id, session_id=session.id,
                 amr=merged)
    return session, secret


#: Built once: every authorization looks the browser's session up.
_BY_TOKEN_HASH = select(SSOSession).where(SSOSession.token_hash == bindparam("token_hash"))


def find_by_secret(secret: str | None, now: datetime | None = None) -> SSOSession | None:
    """The live session whose cookie secret this is, or None."""
    if not secret or len(secret) > 128:
        return None
    now = now or utcnow()
    session = db.session.scalars(_BY_TOKEN_HASH, {"token_hash": hash_token(secret)}).first()
    if session is None or not session.is_active(now):
        return None
    if session.user.status != "active":
        return None
    return session


def get(session_id: str) -> SSOSession | None:
    return db.session.get(SSOSession, session_id)


EndListener = Callable[[SSOSession, Origin | None], None]
_end_listeners: list[EndListener] = []


def on_end(listener: EndListener) -> None:
    """Call ``listener`` whenever a session ends (oidc revokes the session's refresh tokens)."""
    if listener not in _end_listeners:
        _end_listeners.append(listener)


def end_session(
    session: SSOSession, *, reason: str, origin: Origin | None = None,
    now: datetime | None = None,
) -> None:
    session.ended_at = now or utcnow()
    audit.record("session.end", origin=origin, user_id=session.user_id, session_id=session.id,
                 reason=reason)
    for listener in _end_listeners:
        listener(session, origin)


def end_user_sessions(user_id: int, *, reason: str, origin: Origin | None = None) -> int:
    """End every live session of a user (password reset, admin action); return how many."""
    now = utcnow()
    live = db.session.scalars(
        select(SSOSession).where(SSOSession.user_id == user_id, SSOSession.ended_at.is_(None))
    ).all()
    for session in live:
        end_session(session, reason=reason, origin=origin, now=now)
    return len(live)
