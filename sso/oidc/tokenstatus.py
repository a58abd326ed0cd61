"""Introspection's revocation and user-status check, kept per worker when the operator asks
(``SSO_INTROSPECTION_CACHE``, seconds; 0, the default: every introspection reads them).

An introspection answer needs the token's signature and claims (kept already:
``TokenService.verified``) and two facts from the database: whether the token was revoked,
and the name and status of its user. On PostgreSQL that read is about half of an
introspection's cost (a round trip and a backend's work). With the setting, a worker keeps
those two facts per token in a :class:`~sso.taggedcache.TaggedCache`, for at most that many
seconds, and drops them all when the token-status generation changes: a commit that revokes
an access token (the revocation endpoint, a grant's revocation, a refresh token's reuse),
changes a user's status or name, or deletes a user sets a fresh generation (a new user
cannot match a kept token: subjects are never reassigned). The worker that made the change
answers from the database at once; the others within ``CHECK_INTERVAL`` (1 s). That second
is the trade: with the setting, a token revoked or a user disabled on one worker may still
introspect as active on another for up to a second (up to the setting's seconds if Redis
did not answer when the change was announced). Without Redis, every introspection reads the
database, as without the setting.

Only introspection reads through it. UserInfo, the APIs' bearer checks and the grants read
the database on every use, whatever the setting.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from ..config import MAX_INTROSPECTION_CACHE
from ..taggedcache import TaggedCache
from ..users.models import User
from .models import RevokedAccessToken
from .tokens import UserStatusRow, is_revoked, revocation_and_status

#: Seconds between a worker's checks of the token-status generation.
CHECK_INTERVAL = 1.0
#: Tokens a worker keeps the status of (about 200 bytes each); the oldest goes when full.
SIZE = 20_000
EXTENSION = "sso_token_status_cache"
_CHANGED = "sso_token_status_changed"
#: The user's columns an introspection answer depends on.
_USER_COLUMNS = ("status", "username")

Status = tuple[bool, UserStatusRow | None]


class TokenStatusCache(TaggedCache[tuple[str, str | None], Status]):
    """(jti, subject) -> (revoked, the user's name and status); subject None for a client's
    own token."""

    def __init__(self, redis_store: Any, max_age: float,
                 check_interval: float = CHECK_INTERVAL, size: int = SIZE) -> None:
        super().__init__(redis_store, ("oidc", "token-status"), "token statuses",
                         max_age=max_age, check_interval=check_interval, size=size)


def _cache() -> TokenStatusCache | None:
    seconds = current_app.config["INTROSPECTION_CACHE"]
    if not seconds:
        return None
    cache = current_app.extensions.get(EXTENSION)
    if cache is None:
        cache = current_app.extensions.setdefault(
            EXTENSION, TokenStatusCache(current_app.extensions["sso_redis"], float(seconds)))
    return cache  # type: ignore[no-any-return]


def status(jti: str, subject: str | None) -> Status:
    """Whether the access token ``jti`` is revoked, and (for a user's token) its user's name
    and status: from this worker's cache with the setting, else from the database."""

    def read() -> Status:
        if subject is None:
            return is_revoked(jti), None
        return revocation_and_status(jti, subject)

    cache = _cache()
    if cache is None:
        return read()
    found = cache.lookup((jti, subject), read)
    assert found is not None  # noqa: S101 - read() always answers
    return found


def _user_changed(user: User) -> bool:
    attributes = sa_inspect(user).attrs
    return any(attributes[name].history.has_changes() for name in _USER_COLUMNS)


@event.listens_for(Session, "after_flush")
def _note_change(session: Session, _context: Any) -> None:
    if session.info.get(_CHANGED):
        return
    if (any(isinstance(obj, RevokedAccessToken) for obj in session.new)
            or any(isinstance(obj, User) for obj in session.deleted)
            or any(isinstance(obj, User) and _user_changed(obj) for obj in session.dirty)):
        session.info[_CHANGED] = True


@event.listens_for(Session, "do_orm_execute")
def _note_bulk_change(state: Any) -> None:
    if (state.is_update or state.is_delete) and state.bind_mapper in (
            sa_inspect(User), sa_inspect(RevokedAccessToken)):
        state.session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _invalidate_after_commit(session: Session) -> None:
    """A commit that revoked a token or changed a user tells every worker's cache, whatever
    this process's setting (an ``sso`` command run without it still reaches the servers)."""
    if session.info.pop(_CHANGED, False) and has_app_context():
        cache = _cache() or TokenStatusCache(current_app.extensions["sso_redis"],
                                             float(MAX_INTROSPECTION_CACHE))
        cache.invalidate()


@event.listens_for(Session, "after_rollback")
def _forget_change(session: Session) -> None:
    session.info.pop(_CHANGED, None)
