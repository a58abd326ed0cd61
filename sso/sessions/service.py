"""Open, find, step up and end SSO sessions. No Flask request here: callers pass what they
know."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import Select, bindparam, or_, select

from .. import audit, driversql, outbox
from ..audit import Origin
from ..dbtypes import utcnow
from ..extensions import db
from ..security import hash_token, new_token
from ..users.models import User
from .models import Proof, SSOSession

EndListener = Callable[[SSOSession, Origin | None], None]


class Sessions:
    """Per-app registry: who wants to hear that a session ended (oidc revokes its tokens)."""

    def __init__(self) -> None:
        self.end_listeners: list[EndListener] = []


#: The outbox loop sweeps timed-out sessions at most this often, in seconds.
SWEEP_SECONDS = 30.0


def init_app(app: Flask) -> None:
    app.extensions["sso_sessions"] = Sessions()
    last = [0.0]

    def sweep_now_and_then() -> None:
        now = time.monotonic()
        if now - last[0] >= SWEEP_SECONDS:
            last[0] = now
            sweep()

    outbox.every_pass(app, sweep_now_and_then)


def on_end(app: Flask, listener: EndListener) -> None:
    """Call ``listener`` whenever a session of ``app`` ends."""
    listeners = app.extensions["sso_sessions"].end_listeners
    if listener not in listeners:
        listeners.append(listener)


def sign_in(
    user: User,
    proofs: list[Proof],
    *,
    lifetime: int,
    origin: Origin,
    now: datetime | None = None,
    previous: SSOSession | None = None,
) -> tuple[SSOSession, str]:
    """Record what ``user`` proved; return the session and the secret for the browser's cookie.

    If the browser already holds a live session of the same user, the proofs are added to it
    in place (``auth_time`` moves) so the ``sid`` the apps know stays the same; the cookie
    secret is replaced either way, which defeats session fixation. A live session of another
    user ends.
    """
    now = now or utcnow()
    secret = new_token()
    if previous is not None and previous.user_id == user.id and previous.is_active(now):
        session = previous
        session.add_proofs(proofs)
        session.auth_time = now
        session.token_hash = hash_token(secret)
        session.last_seen_at = now
        audit.record("session.step_up", origin=origin, user_id=user.id, session_id=session.id,
                     amr=session.amr)
        return session, secret
    if previous is not None and previous.is_active(now):
        end_session(previous, reason="replaced", origin=origin, now=now)
    session = SSOSession(
        id=new_token(nbytes=16),
        token_hash=hash_token(secret),
        user_id=user.id,
        user=user,
        created_at=now,
        auth_time=now,
        proof_log=[],
        last_seen_at=now,
        expires_at=now + timedelta(seconds=lifetime),
        ip=origin.ip,
        user_agent=(origin.user_agent or "")[:255] or None,
    )
    session.add_proofs(proofs)
    db.session.add(session)
    audit.record("session.open", origin=origin, user_id=user.id, session_id=session.id,
                 amr=session.amr)
    return session, secret


_SESSION_KEYS, _SESSION_COLUMNS = driversql.mapped_columns(SSOSession)
_USER_KEYS, _USER_COLUMNS = driversql.mapped_columns(User)
#: Built once: every authorization looks the browser's session up, with its user.
_BY_TOKEN_HASH = (
    select(*_SESSION_COLUMNS,
           *(column.label(f"users_{column.name}") for column in _USER_COLUMNS))
    .join_from(SSOSession, User, SSOSession.user_id == User.id)
    .where(SSOSession.token_hash == bindparam("token_hash"))
)
#: The id of the user whose session the cookie's secret names, as SQL: what the columns read
#: along with the session (:func:`reading_along`) are built on. Not correlated with the
#: session read's own row, so a column may use a recursive CTE (the user's groups), which
#: SQLAlchemy places at the top of the statement.
USER_OF_SECRET = (select(SSOSession.user_id)
                  .where(SSOSession.token_hash == bindparam("token_hash"))
                  .scalar_subquery())


def reading_along(columns: Sequence[Any]) -> Select[Any]:
    """The session read with ``columns`` after the session's and its user's, for
    :func:`find_by_secret_along`: build it once, it is compiled once per statement object."""
    return _BY_TOKEN_HASH.add_columns(*columns)


def _by_token_hash(token_hash: str, along: Select[Any] | None = None,
                   params: Mapping[str, Any] | None = None
                   ) -> tuple[SSOSession | None, tuple[Any, ...]]:
    """The session and its user, as an ORM query with the user joined would load them, read
    with the driver's SQL (:func:`sso.driversql.persistent`): a third of an authorization's
    time went to loading them through the ORM. Read alone while the request has written
    nothing (:func:`sso.driversql.one_statement`); once it has, inside its transaction,
    after its pending changes are flushed, as an ORM query's autoflush would. With
    ``along`` (:func:`reading_along`), the values of its extra columns too."""
    found = driversql.one_statement(_BY_TOKEN_HASH if along is None else along,
                                    {"token_hash": token_hash, **(params or {})})
    if not found:
        return None, ()
    row, split = found[0], len(_SESSION_KEYS)
    users_end = split + len(_USER_KEYS)
    orm = db.session()
    user = driversql.persistent(orm, User, _USER_KEYS, row[split:users_end])
    session = driversql.persistent(orm, SSOSession, _SESSION_KEYS, row[:split], user=user)
    return session, tuple(row[users_end:])


def find_by_secret(secret: str | None, now: datetime | None = None) -> SSOSession | None:
    """The live session whose cookie secret this is, or None."""
    return find_by_secret_along(secret, None, now=now)[0]


def find_by_secret_along(secret: str | None, along: Select[Any] | None,
                         params: Mapping[str, Any] | None = None, now: datetime | None = None
                         ) -> tuple[SSOSession | None, tuple[Any, ...]]:
    """:func:`find_by_secret`, reading ``along`` (:func:`reading_along`, with ``params``
    bound besides the secret's hash) in the same statement: the live session and the values
    of the extra columns, or None and nothing."""
    if not secret or len(secret) > 128:
        return None, ()
    now = now or utcnow()
    session, values = _by_token_hash(hash_token(secret), along, params)
    if session is None or not session.is_active(now):
        return None, ()
    if session.user.status != "active":
        return None, ()
    if reason := timed_out(session, now):
        # Ended now, on use, so the apps hear of it at once (the sweep catches the rest).
        end_session(session, reason=reason, now=now)
        db.session.commit()
        return None, ()
    return session, values


def live_sessions(user_id: int) -> list[SSOSession]:
    """The user's sessions that have not ended, newest first."""
    now = utcnow()
    rows = db.session.scalars(
        select(SSOSession).where(SSOSession.user_id == user_id, SSOSession.ended_at.is_(None),
                                 SSOSession.expires_at > now)
        .order_by(SSOSession.created_at.desc())
    ).all()
    return [row for row in rows if timed_out(row, now) is None]


def sweep(now: datetime | None = None, limit: int = 500) -> int:
    """End sessions past their idle or absolute limit (or expired) that nobody used since,
    so the apps hear of it; return how many ended. Run by the outbox's events lane."""
    now = now or utcnow()
    config = current_app.config
    idle, longest = int(config["SESSION_IDLE"] or 0), int(config["SESSION_MAX"] or 0)
    conditions = [SSOSession.expires_at <= now]
    if idle:
        conditions.append(SSOSession.last_seen_at <= now - timedelta(seconds=idle))
    if longest:
        conditions.append(SSOSession.created_at <= now - timedelta(seconds=longest))
    rows = db.session.scalars(
        select(SSOSession).where(SSOSession.ended_at.is_(None), or_(*conditions)).limit(limit)
    ).all()
    for row in rows:
        end_session(row, reason=timed_out(row, now) or "expired", now=now)
    db.session.commit()
    return len(rows)


def get(session_id: str) -> SSOSession | None:
    return db.session.get(SSOSession, session_id)


def timed_out(session: SSOSession, now: datetime) -> str | None:
    """``"idle"`` or ``"absolute"`` if the session outlived ``SESSION_IDLE`` seconds without
    sign-in activity or ``SESSION_MAX`` seconds in all; else None."""
    config = current_app.config
    idle, longest = int(config["SESSION_IDLE"] or 0), int(config["SESSION_MAX"] or 0)
    if longest and now - session.created_at >= timedelta(seconds=longest):
        return "absolute"
    if idle and now - session.last_seen_at >= timedelta(seconds=idle):
        return "idle"
    return None


#: Sign-in activity moves ``last_seen_at`` at most this often (one write per session then).
TOUCH_SECONDS = 15


def note_client(session: SSOSession, client_id: str, now: datetime | None = None) -> None:
    """The session signed the user in to app ``client_id``: remember the app (it hears of the
    session's end) and count it as activity for the idle timeout."""
    now = now or utcnow()
    reached = list(session.client_ids or [])
    if client_id not in reached:
        session.client_ids = [*reached, client_id]
    if now - session.last_seen_at >= timedelta(seconds=TOUCH_SECONDS):
        session.last_seen_at = now


def end_session(
    session: SSOSession, *, reason: str, origin: Origin | None = None,
    now: datetime | None = None,
) -> None:
    """End a live session and tell every listener (tokens revoked, apps told)."""
    if session.ended_at is not None:
        return
    session.ended_at = now or utcnow()
    session.end_reason = reason[:32]
    audit.record("session.end", origin=origin, user_id=session.user_id, session_id=session.id,
                 reason=reason)
    for listener in current_app.extensions["sso_sessions"].end_listeners:
        listener(session, origin)


def end_user_sessions(user_id: int, *, reason: str, origin: Origin | None = None,
                      keep: str | None = None) -> int:
    """End every live session of a user but ``keep`` (password change, reset, admin action);
    return how many ended."""
    now = utcnow()
    live = db.session.scalars(
        select(SSOSession).where(SSOSession.user_id == user_id, SSOSession.ended_at.is_(None))
    ).all()
    ended = 0
    for session in live:
        if session.id != keep:
            end_session(session, reason=reason, origin=origin, now=now)
            ended += 1
    return ended
