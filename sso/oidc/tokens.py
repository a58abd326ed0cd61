"""Issue, validate and revoke tokens.

* Access tokens are JWTs (RFC 9068, ``typ: at+jwt``), signed with ``SSO_ACCESS_TOKEN_ALG``.
  The first access token of a grant has the grant's id as its ``jti``, so revoking a grant
  (replayed code, reused refresh token) can name it without having stored it.
* ID tokens are JWTs signed with the client's ``id_token_signed_response_alg`` (RS256 default).
* Refresh tokens are opaque (``ssor_`` + 256 random bits), stored as SHA-256, rotated on every
  use; a reused one revokes its whole family.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

import orjson
from flask import current_app
from sqlalchemy import (
    Interval,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    literal_column,
    select,
    update,
)

from .. import audit, database, driversql
from ..audit import Origin
from ..dbtypes import utcnow
from ..extensions import db
from ..security import hash_token, new_token
from ..sessions.models import SSOSession
from ..users.models import ROLES_IN, User, UserStatus
from .claims import user_claims
from .keys import InvalidJWS, b64url_decode, decode_jws, encode_jws, half_hash
from .keystore import KeyStore
from .models import Client, RefreshToken, RevokedAccessToken

log = logging.getLogger(__name__)

REFRESH_PREFIX = "ssor_"
ACCESS_TYPE = "at+jwt"
#: Clock skew tolerated when validating our own tokens.
LEEWAY = 30
#: Access tokens whose signature a worker has verified, or that it signed for a user, kept
#: (per worker) so that the next use of the same token skips the signature and the
#: decoding (issue 15: introspection and userinfo see the same token many times). Expiry,
#: issuer and revocation are still checked on every use, and the user's status by the
#: callers that load the user.
VERIFIED_TOKENS = 4096


class VerifiedTokens:
    """A bounded map of token string -> (kid, claims) for tokens whose signature verified.

    Keyed by the whole compact token, signature included, so only the exact bytes that were
    verified hit. A hit still needs its key in the key store (a key dropped after its
    retirement grace un-verifies its tokens, as :func:`decode_jws` would). When full, the
    oldest entry goes (insertion order).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: dict[str, tuple[str, dict[str, Any]]] = {}
        # The server answers on many threads: one evicts at a time.
        self._evicting = threading.Lock()

    def get(self, keys: KeyStore, token: str) -> dict[str, Any] | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if keys.by_kid(entry[0]) is None:
            self._entries.pop(token, None)
            return None
        return dict(entry[1])  # callers may change their copy

    def put(self, token: str, claims: dict[str, Any]) -> None:
        """Keep a token whose signature :func:`decode_jws` verified, with its claims."""
        if self.size <= 0:
            return
        try:
            header = orjson.loads(b64url_decode(token.split(".", 1)[0]))
        except ValueError:  # it verified, so this cannot happen; no caching then
            return
        self.put_issued(token, str(header["kid"]), claims)

    def put_issued(self, token: str, kid: str, claims: dict[str, Any]) -> None:
        """Keep a token this worker has just signed with its key ``kid``, with the claims
        it signed."""
        if self.size <= 0:
            return
        entries = self._entries
        with self._evicting:
            while len(entries) >= self.size:
                try:
                    entries.pop(next(iter(entries)), None)
                except (RuntimeError, StopIteration):  # get() dropped one meanwhile
                    continue
            entries[token] = (kid, dict(claims))


@dataclass
class GrantFacts:
    """How the user authenticated, carried from the code to every token of the grant."""

    grant_id: str
    session_id: str | None
    auth_time: datetime
    acr: str | None
    amr: list[str] = field(default_factory=list)
    nonce: str | None = None


@dataclass
class AccessTokenInfo:
    """A validated access token."""

    claims: dict[str, Any]
    #: The user the token is for, read with the revocation check when the caller asked
    #: (``with_user``: the User; ``status_of``: a :class:`UserStatusRow`); None for a
    #: client's own token or a user that no longer exists.
    user: Any = None

    @property
    def scopes(self) -> list[str]:
        return str(self.claims.get("scope", "")).split()

    @property
    def client_id(self) -> str:
        return str(self.claims["client_id"])


class TokenService:
    def __init__(self, keys: KeyStore, config: Any) -> None:
        self.keys = keys
        self.issuer: str = config["ISSUER"]
        self.access_alg: str = config["ACCESS_TOKEN_ALG"]
        self.access_ttl: int = config["ACCESS_TOKEN_TTL"]
        self.id_ttl: int = config["ID_TOKEN_TTL"]
        self.refresh_ttl: int = config["REFRESH_TOKEN_TTL"]
        self.offline_ttl: int = config["OFFLINE_REFRESH_TOKEN_TTL"]
        self.offline_max = timedelta(days=float(config.get("OFFLINE_MAX_DAYS") or 0))
        self.verified = VerifiedTokens(VERIFIED_TOKENS)

    # The app's own lifetimes (``Client.*_ttl``, set in the console or ``sso clients``) win
    # over the settings; the client is already loaded on every path that asks, so this costs
    # no statement.

    def access_ttl_for(self, client: Client) -> int:
        return client.access_token_ttl or self.access_ttl

    def access_expiry(self, client: Client, now: datetime) -> datetime:
        """When an access token issued to ``client`` at ``now`` expires."""
        return now + timedelta(seconds=self.access_ttl_for(client))

    def id_ttl_for(self, client: Client) -> int:
        return client.id_token_ttl or self.id_ttl

    # Access tokens.

    def access_token(
        self, client: Client, user: User | TokenUser | None, scope: str,
        facts: GrantFacts | None, jti: str, now: datetime,
    ) -> tuple[str, datetime]:
        iat = int(now.timestamp())
        ttl = self.access_ttl_for(client)
        expires = self.access_expiry(client, now)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user.subject if user else client.client_id,
            "aud": client.client_id,
            "client_id": client.client_id,
            "iat": iat,
            "exp": iat + ttl,
            "jti": jti,
            "scope": scope,
        }
        if facts is not None:
            claims["auth_time"] = int(facts.auth_time.timestamp())
            if facts.acr:
                claims["acr"] = facts.acr
            if facts.amr:
                claims["amr"] = facts.amr
            if facts.session_id:
                claims["sid"] = facts.session_id
        if user is not None and "roles" in scope.split():
            claims["roles"] = user.roles_in(client.client_id)
        key = self.keys.active(self.access_alg)
        token = encode_jws(key, claims, typ=ACCESS_TYPE)
        if user is not None:
            # An app takes a user's new token to UserInfo next, often on this worker: its
            # signature needs no check there (a client's own token goes to its APIs). Its
            # claims are JSON's own types, so they are what verifying it would read back
            # (tests/perf/test_verified_tokens.py).
            self.verified.put_issued(token, key.kid, claims)
        return token, expires

    def validate_access_token(
        self, token: str, now: datetime | None = None, *, with_user: bool = False,
        with_token_user: bool = False,
        status_of: Callable[[str, str | None], tuple[bool, Any]] | None = None,
    ) -> AccessTokenInfo:
        """Check signature, type, issuer, expiry and revocation; raise InvalidJWS if any fails.

        ``with_user`` also loads the token's user, in the revocation check's statement;
        ``with_token_user`` reads it there as plain columns (``info.user`` is then a
        :class:`TokenUser`: what UserInfo's claims need); ``status_of(jti, subject)`` answers
        the revocation and the user's name and status (a :class:`UserStatusRow`; the subject
        is None for a client's own token) instead (introspection: ``tokenstatus.status``).
        """
        claims = self.verified.get(self.keys, token)
        if claims is None:
            claims = decode_jws(self.keys, token, typ=ACCESS_TYPE)
            self.verified.put(token, claims)
        now_ts = (now or utcnow()).timestamp()
        if claims.get("iss") != self.issuer:
            raise InvalidJWS("wrong issuer")
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp + LEEWAY < now_ts:
            raise InvalidJWS("expired")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not isinstance(claims.get("client_id"), str):
            raise InvalidJWS("malformed")
        user: Any = None
        if status_of is not None:
            own = claims.get("sub") == claims["client_id"]
            revoked, user = status_of(jti, None if own else str(claims.get("sub")))
        elif with_token_user and claims.get("sub") != claims["client_id"]:
            revoked, user = revocation_and_token_user(jti, str(claims.get("sub")))
        elif with_user and claims.get("sub") != claims["client_id"]:
            revoked, user = revocation_and_user(jti, str(claims.get("sub")))
        else:
            revoked = is_revoked(jti)
        if revoked:
            raise InvalidJWS("revoked")
        return AccessTokenInfo(claims, user)

    # ID tokens.

    def id_token(
        self, client: Client, user: User | TokenUser, scope: str, facts: GrantFacts,
        access_token: str | None, now: datetime, include_nonce: bool = True,
    ) -> str:
        iat = int(now.timestamp())
        claims = user_claims(user, scope.split(), client.client_id)
        claims.update({
            "iss": self.issuer,
            "aud": client.client_id,
            "iat": iat,
            "exp": iat + self.id_ttl_for(client),
            "auth_time": int(facts.auth_time.timestamp()),
        })
        if facts.nonce and include_nonce:
            claims["nonce"] = facts.nonce
        if facts.acr:
            claims["acr"] = facts.acr
        if facts.amr:
            claims["amr"] = facts.amr
        if facts.session_id:
            claims["sid"] = facts.session_id
        key = self.keys.active(client.id_token_signed_response_alg or "RS256")
        if access_token:
            claims["at_hash"] = half_hash(access_token, key.alg)
        return encode_jws(key, claims, typ="JWT")

    def decode_id_token_hint(self, token: str) -> dict[str, Any] | None:
        """Claims of an ID token we issued, expired or not (for logout and ``id_token_hint``).

        Only an ID token: ``typ`` JWT (an access token is ``at+jwt``, a security event
        ``secevent+jwt``), an audience, and none of the claims that mark the others
        (``client_id``/``scope`` of RFC 9068, ``events`` of RFC 8417)."""
        try:
            claims = decode_jws(self.keys, token, typ="jwt")
        except InvalidJWS:
            return None
        if claims.get("iss") != self.issuer or "sub" not in claims:
            return None
        audience = claims.get("aud")
        if not audience or not isinstance(audience, (str, list)):
            return None
        if any(marker in claims for marker in ("client_id", "scope", "events")):
            return None
        return claims

    # Refresh tokens.

    def refresh_lifetimes(self, client: Client, now: datetime) -> tuple[datetime, datetime]:
        """When a refresh token issued ``now`` to ``client`` would expire, before the bounds
        of its grant: bound to the SSO session, and offline (the app's own lifetime wins
        for both). :meth:`new_refresh_token` applies the bounds; ``refresh_expiry`` is the
        same rule in SQL."""
        own = client.refresh_token_ttl
        return (now + timedelta(seconds=own or self.refresh_ttl),
                now + timedelta(seconds=own or self.offline_ttl))

    def new_refresh_token(
        self, client: Client, user: User | TokenUser, scope: str, facts: GrantFacts,
        access_jti: str, access_expires_at: datetime, now: datetime,
        session_expires_at: datetime | None,
        token: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """A new link of the family ``facts.grant_id``: the token, and its row's columns for
        :func:`store_refresh_token` (a dict: an ORM object cost ~30 µs to build, for a row
        that is only inserted). ``token`` is its value if already drawn (the refresh grant
        names it in the claim of its predecessor)."""
        token = token or new_token(REFRESH_PREFIX)
        offline = "offline_access" in scope.split()
        online_until, offline_until = self.refresh_lifetimes(client, now)
        if offline:
            expires = offline_until
            if self.offline_max:
                # Sliding, but never past the absolute end counted from the sign-in that
                # began the grant (every link of the family carries its auth_time).
                expires = min(expires, facts.auth_time + self.offline_max)
        else:
            expires = online_until
            if session_expires_at is not None:
                expires = min(expires, session_expires_at)
        row = {
            "token_hash": hash_token(token),
            "family_id": facts.grant_id,
            "client_id": client.client_id,
            "user_id": user.id,
            "session_id": None if offline else facts.session_id,
            "scope": scope,
            "auth_time": facts.auth_time,
            "acr": facts.acr,
            "amr": facts.amr,
            "access_jti": access_jti,
            "access_expires_at": access_expires_at,
            "created_at": now,
            "expires_at": expires,
            "used_at": None,
            "revoked_at": None,
            "successor": None,
            "answer": None,
        }
        return token, row


def find_refresh_token(token: str) -> RefreshToken | None:
    if not token.startswith(REFRESH_PREFIX) or len(token) > 128:
        return None
    return db.session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == hash_token(token))
    )


def claim_refresh_token_by_value(token: str, now: datetime, successor: str) -> Any | None:
    """Mark an unused, live refresh token used by the token ``successor`` (the new token
    this use issues) and return it, in one statement.

    ``UPDATE ... RETURNING`` both claims and loads the row, so of two racing requests exactly
    one gets it; None means it is unknown, used, revoked or expired (the caller looks closer).
    The used row names its successor by hash, so that a retry within the grace finds the
    answer the successor's row keeps (:func:`open_successor`). The row is a named tuple of
    the columns the grant reads: ``id``, ``family_id``, ``client_id``, ``user_id``,
    ``session_id``, ``scope``, ``auth_time``, ``acr`` and ``amr``; then the user's
    (``user_subject`` ... ``user_status``, None if the user is gone) and the SSO session's
    ``session_ended_at`` and ``session_expires_at``: :func:`claimed_user_and_session_expiry`
    reads them.
    """
    if not token.startswith(REFRESH_PREFIX) or len(token) > 128:
        return None
    claimed = driversql.rows(database.connection(), _CLAIM_REFRESH, {
        "claimed_hash": hash_token(token), "claimed_at": now,
        "successor_hash": hash_token(successor)})
    return claimed[0] if claimed else None


def take_refresh_token(token: str, now: datetime, successor: str) -> Any | None:
    """The live, unused refresh token ``token``, as :func:`claim_refresh_token_by_value`
    returns it, taken for the use that issues ``successor``; None as there.

    On PostgreSQL it is only read here: :func:`rotate_refresh_token` claims it in the one
    statement that writes the whole use. Elsewhere it is claimed here, in the request's
    transaction, and :func:`rotate_refresh_token` writes the rest of the use after it."""
    if not rotates_in_one_statement():
        return claim_refresh_token_by_value(token, now, successor)
    if not token.startswith(REFRESH_PREFIX) or len(token) > 128:
        return None
    found = driversql.one_statement(_PEEK_REFRESH, {"claimed_hash": hash_token(token),
                                                    "claimed_at": now})
    return found[0] if found else None


def rotate_refresh_token(row: Any, now: datetime, successor: str,
                         new_row: dict[str, Any] | None, sealed: str | None,
                         audit_row: dict[str, Any]) -> bool:
    """Write the use of refresh token ``row`` (:func:`take_refresh_token`'s): ``row`` used,
    naming its successor, the successor's row ``new_row`` (with the answer sealed for the
    grace) or, where the use issues no new token, ``sealed`` (that answer, or None) kept
    on ``row`` itself, and the audit event ``audit_row`` (:func:`sso.audit.row`).

    On PostgreSQL that is one statement, which claims ``row`` (unused, live, its user active
    and its SSO session live, checked again under the row's lock) and writes the rest only
    if it did: its own transaction where the request has begun none, so one round trip
    instead of BEGIN, the claim, two INSERTs and COMMIT (``docs/performance.md``). False:
    the claim failed (another use took the token first, or the user or the session ended
    meanwhile) and nothing was written. Elsewhere ``row`` is already claimed, the rest is
    written in the request's transaction, and the answer is True."""
    if not rotates_in_one_statement():
        audit.record_row(audit_row)
        if new_row is not None:
            store_refresh_token(new_row)
        elif sealed is not None:
            driversql.execute(database.connection(), _SEAL_SUCCESSOR,
                              {"row_id": row.id, "sealed": sealed})
        return True
    params = {"claimed_id": row.id, "claimed_at": now,
              "successor": hash_token(successor) if new_row is not None or sealed is None
              else sealed, **claim_then_write_params(audit_row, new_row)}
    claimed = driversql.one_statement(
        _ROTATE_TO_SUCCESSOR if new_row is not None else _ROTATE_ALONE, params)
    if claimed:
        audit.recorded(audit_row)
    return bool(claimed)


def rotates_in_one_statement() -> bool:
    """Whether a refresh token's use and a code's exchange are written as one statement
    (PostgreSQL's data-modifying WITH), not as a claim followed by the writes in a
    transaction (SQLite has no such statement, and no round trips to save)."""
    return db.engine.dialect.name == "postgresql"  # type: ignore[no-any-return]


_REFRESH_TABLE = RefreshToken.__table__


@dataclass(slots=True)
class TokenUser:
    """The user a token is issued for, as the columns its claims read: what the grants hand
    to :meth:`TokenService.access_token`, :meth:`~TokenService.id_token` and
    :func:`.claims.user_claims` (issue 15: loading the ORM ``User`` cost more than the
    statement that read it)."""

    id: int
    subject: str
    username: str
    name: str | None
    locale: str | None
    updated_at: datetime
    email: str | None
    email_verified: bool
    phone: str | None
    phone_verified: bool
    status: str
    #: client_id -> the user's roles there, read once per token answer (access and ID token
    #: both ask), as the token's other reads are: in the request's transaction if it has
    #: begun, else outside any (UserInfo makes no ORM session).
    known_roles: dict[str, list[str]] = field(default_factory=dict)

    def roles_in(self, client_id: str) -> list[str]:
        if client_id not in self.known_roles:
            params = {"roles_user": self.id, "roles_client": client_id}
            self.known_roles[client_id] = [
                row.name for row in driversql.one_statement(ROLES_IN, params)]
        return list(self.known_roles[client_id])

    def get_user_id(self) -> str:
        """Authlib's hook: the ``sub`` of the tokens."""
        return self.subject


#: The user's columns a token's claims read: :class:`TokenUser`'s fields after its ``id``.
_TOKEN_USER_COLUMNS = tuple(f.name for f in fields(TokenUser)
                            if f.name not in ("id", "known_roles"))


def _read_along(claimed: str, table: Any, column: str, key: str, label: str) -> Any:
    """``table.column`` of the row that the ``key`` column of the row being claimed (in table
    ``claimed``) names, read by the claim itself: a scalar subquery in its RETURNING
    (PostgreSQL and SQLite both allow one there). Written out, because SQLAlchemy's SQLite
    compiler drops the table names inside RETURNING and would leave the correlation to how
    SQLite resolves bare column names."""
    name, column_type = table.name, table.c[column].type  # the models' names only
    return literal_column(
        f"(SELECT {name}.{column} FROM {name} WHERE {name}.id = {claimed}.{key})",  # noqa: S608
        column_type).label(label)


def read_along(claimed: str) -> list[Any]:
    """The columns a claim of a row of ``claimed`` (a refresh token, an authorization code:
    a table with ``user_id`` and ``session_id``) returns for
    :func:`claimed_user_and_session_expiry`: the user's (``user_subject`` ... ``user_status``)
    and the SSO session's (``session_ended_at``, ``session_expires_at``). One round trip,
    where a SELECT followed the claim."""
    sessions = SSOSession.__table__
    return [*(_read_along(claimed, User.__table__, column, "user_id", f"user_{column}")
              for column in _TOKEN_USER_COLUMNS),
            _read_along(claimed, sessions, "ended_at", "session_id", "session_ended_at"),
            _read_along(claimed, sessions, "expires_at", "session_id", "session_expires_at")]


def joined_along(claimed: Any) -> tuple[Any, list[Any]]:
    """What :func:`read_along` reads, for a statement that selects from ``claimed`` (a
    CTE of a claimed row with ``user_id`` and ``session_id``) rather than returning from
    the claim: ``claimed`` joined to the user and the SSO session, and their columns under
    the same names. A join reads each row once, where the subqueries read it per column."""
    users, sessions = User.__table__, SSOSession.__table__
    joined = (claimed.join(users, users.c.id == claimed.c.user_id)
              .outerjoin(sessions, sessions.c.id == claimed.c.session_id))
    return joined, [*(users.c[column].label(f"user_{column}") for column in _TOKEN_USER_COLUMNS),
                    sessions.c.ended_at.label("session_ended_at"),
                    sessions.c.expires_at.label("session_expires_at")]


#: The names :func:`read_along` gives its columns, in order.
READ_ALONG = (*(f"user_{column}" for column in _TOKEN_USER_COLUMNS), "session_ended_at",
              "session_expires_at")


#: What the refresh grant reads of the token it takes, and no more: every column returned
#: costs its description and result processing on each use (most on PostgreSQL). The
#: token's user and the state of its SSO session come with it (:func:`read_along`).
_TAKEN_OWN = (_REFRESH_TABLE.c.id, _REFRESH_TABLE.c.family_id, _REFRESH_TABLE.c.client_id,
              _REFRESH_TABLE.c.user_id, _REFRESH_TABLE.c.session_id, _REFRESH_TABLE.c.scope,
              _REFRESH_TABLE.c.auth_time, _REFRESH_TABLE.c.acr, _REFRESH_TABLE.c.amr)
_TAKEN = (*_TAKEN_OWN, *read_along("refresh_tokens"))

#: A refresh token that may be used at ``claimed_at``: unused, not revoked, not expired.
_LIVE_REFRESH = (_REFRESH_TABLE.c.used_at.is_(None), _REFRESH_TABLE.c.revoked_at.is_(None),
                 _REFRESH_TABLE.c.expires_at > bindparam("claimed_at"))

_CLAIM_REFRESH = (
    _REFRESH_TABLE.update()
    .where(_REFRESH_TABLE.c.token_hash == bindparam("claimed_hash"), *_LIVE_REFRESH)
    .values(used_at=bindparam("claimed_at"), successor=bindparam("successor_hash"))
    .returning(*_TAKEN)
)


def _peek_refresh() -> Any:
    """:func:`take_refresh_token`'s read where :func:`rotate_refresh_token` claims: the
    token's columns of ``_TAKEN``, the user and the SSO session joined (:func:`joined_along`)
    instead of read by a subquery per column. The join to the user drops no row: a refresh
    token's user is a foreign key that deletes its tokens with it."""
    joined, along = joined_along(_REFRESH_TABLE)
    return (select(*_TAKEN_OWN, *along).select_from(joined)
            .where(_REFRESH_TABLE.c.token_hash == bindparam("claimed_hash"), *_LIVE_REFRESH))


_PEEK_REFRESH = _peek_refresh()


def user_active(table: Any) -> Any:
    """A claim's check, in its ``WHERE``, that the user of ``table``'s row is active.

    The user's status is read by the user's id alone and compared outside: with both in one
    ``EXISTS``, PostgreSQL could price the console's (status, username) index like the
    primary key on a table not yet analyzed and walk every active user on each claim."""
    users = User.__table__
    status = select(users.c.status).where(users.c.id == table.c.user_id).scalar_subquery()
    return status == UserStatus.ACTIVE


def claim_then_write(claimed: Any, with_new_token: bool) -> Any:
    """One PostgreSQL statement around the claim ``claimed`` (an ``UPDATE ... RETURNING``
    as a CTE named ``claimed``): the audit event (parameters ``audit_*``, the columns of
    :func:`sso.audit.row`) and, ``with_new_token``, a new refresh token's row (``new_*``,
    :data:`NEW_REFRESH_COLUMNS`), each written once per row claimed, that is once or not at
    all. It returns a row if the claim took one: PostgreSQL runs a data-modifying ``WITH``
    whether or not the statement reads it, each part once, on the same snapshot."""

    def written(table: Any, columns: tuple[str, ...], prefix: str) -> Any:
        values = select(*(bindparam(f"{prefix}{name}", type_=table.c[name].type)
                          for name in columns)).select_from(claimed)
        return table.insert().from_select(list(columns), values)

    audited = written(audit.AuditEvent.__table__, audit.COLUMNS, "audit_").cte("audited")
    if not with_new_token:
        return select(*claimed.c).add_cte(audited)
    return (written(_REFRESH_TABLE, NEW_REFRESH_COLUMNS, "new_")
            .add_cte(claimed, audited).returning(_REFRESH_TABLE.c.id))


def refresh_expiry(now: Any, scope: Any, auth_time: Any, session_id: Any,
                   session_ended_at: Any, session_expires_at: Any) -> Any:
    """:meth:`TokenService.new_refresh_token`'s expiry as SQL, for the grant's first refresh
    token written by the statement that claims its code, from the code's columns and its
    session's: ``online_until`` and ``offline_until`` (:meth:`TokenService.refresh_lifetimes`),
    ``offline_max`` (an interval, NULL for none: ``least`` passes over a NULL) as
    parameters, ``now`` the moment of the claim. ``tests/oidc/test_lifetimes.py`` holds the
    two to the same answers."""
    moment = _REFRESH_TABLE.c.expires_at.type
    online_until = bindparam("online_until", type_=moment)
    live_session_end = case(
        (and_(session_ended_at.is_(None), session_expires_at > now), session_expires_at),
        else_=now)
    return case(
        (is_offline(scope), func.least(bindparam("offline_until", type_=moment),
                                       auth_time + bindparam("offline_max", type_=Interval))),
        (session_id.is_(None), online_until),
        else_=func.least(online_until, live_session_end))


def is_offline(scope: Any) -> Any:
    """SQL: whether the scope ``scope`` (a column) holds ``offline_access``, word for word as
    ``"offline_access" in scope.split()``."""
    return literal_column("'offline_access'") == func.any(
        func.regexp_split_to_array(scope, literal_column(r"'\s+'")))


def claim_then_write_params(audit_row: dict[str, Any],
                            new_row: dict[str, Any] | None) -> dict[str, Any]:
    """:func:`claim_then_write`'s parameters for ``audit_row`` and ``new_row``."""
    params = {f"audit_{name}": audit_row[name] for name in audit.COLUMNS}
    if new_row is not None:
        params.update((f"new_{name}", new_row[name]) for name in NEW_REFRESH_COLUMNS)
    return params


#: The columns of a new refresh token's row (:meth:`TokenService.new_refresh_token`) that
#: :func:`claim_then_write` writes: the rest are NULL in a new row.
NEW_REFRESH_COLUMNS = ("token_hash", "family_id", "client_id", "user_id", "session_id",
                       "scope", "auth_time", "acr", "amr", "access_jti", "access_expires_at",
                       "created_at", "expires_at", "answer")


def _refresh_claim() -> Any:
    """:func:`rotate_refresh_token`'s claim of the taken row by its id, with
    :func:`take_refresh_token`'s conditions and the user's and the session's checked under
    the row's lock."""
    sessions = SSOSession.__table__
    return (
        _REFRESH_TABLE.update()
        .where(_REFRESH_TABLE.c.id == bindparam("claimed_id"), *_LIVE_REFRESH,
               user_active(_REFRESH_TABLE),
               _REFRESH_TABLE.c.session_id.is_(None)
               | exists().where(sessions.c.id == _REFRESH_TABLE.c.session_id,
                                sessions.c.ended_at.is_(None),
                                sessions.c.expires_at > bindparam("claimed_at")))
        .values(used_at=bindparam("claimed_at"), successor=bindparam("successor"))
        .returning(_REFRESH_TABLE.c.id)
        .cte("claimed")
    )


_ROTATE_TO_SUCCESSOR = claim_then_write(_refresh_claim(), with_new_token=True)
_ROTATE_ALONE = claim_then_write(_refresh_claim(), with_new_token=False)


def _successor_cipher() -> Any:
    return _cipher_for(str(current_app.config["SECRET_KEY"]))


@functools.lru_cache(maxsize=4)
def _cipher_for(secret: str) -> Any:
    """The sealing cipher of a secret key, built once (it is stateless: each encryption
    draws its own IV)."""
    import base64  # noqa: PLC0415
    import hashlib  # noqa: PLC0415

    from cryptography.fernet import Fernet  # noqa: PLC0415

    key = hashlib.sha256(b"sso refresh successor\0" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(answer: dict[str, Any]) -> str:
    """``answer`` encrypted with a key drawn from the server's secret (the database never
    holds a usable token)."""
    return str(_successor_cipher().encrypt(orjson.dumps(answer)).decode())


#: Where a use issues no new token: the answer it gave, sealed, kept on the used row itself.
_SEAL_SUCCESSOR = (_REFRESH_TABLE.update().where(_REFRESH_TABLE.c.id == bindparam("row_id"))
                   .values(successor=bindparam("sealed")))
_SUCCESSOR_ANSWER = select(_REFRESH_TABLE.c.answer).where(
    _REFRESH_TABLE.c.token_hash == bindparam("successor_hash"))
#: A token hash (``security.hash_token``): what a used row's ``successor`` names, where a
#: sealed answer (Fernet, base64) is longer and never all hexadecimal.
_TOKEN_HASH = re.compile(r"[0-9a-f]{64}")


def open_successor(row: RefreshToken, now: datetime, grace: float) -> dict[str, Any] | None:
    """The answer ``row``'s use gave, if it was used less than ``grace`` seconds ago: kept
    by the token that use issued, or (a use that issued none, a row used before migration
    0021) by ``row`` itself."""
    from cryptography.fernet import InvalidToken  # noqa: PLC0415

    if not row.successor or row.used_at is None or grace <= 0:
        return None
    if row.used_at < now - timedelta(seconds=grace):
        return None
    sealed: str | None = row.successor
    if _TOKEN_HASH.fullmatch(row.successor):
        sealed = db.session.scalar(_SUCCESSOR_ANSWER, {"successor_hash": row.successor})
        if not sealed:
            return None
    try:
        answer = orjson.loads(_successor_cipher().decrypt(str(sealed).encode()))
    except (InvalidToken, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def store_refresh_token(row: dict[str, Any]) -> None:
    """Insert a new refresh token (:meth:`TokenService.new_refresh_token`'s row) with a plain
    INSERT, skipping the ORM's unit of work."""
    driversql.execute(database.connection(), _INSERT_REFRESH, row)


_INSERT_REFRESH = _REFRESH_TABLE.insert()


_SESSION_STATE = select(SSOSession.ended_at, SSOSession.expires_at).where(
    SSOSession.id == bindparam("id"))


def live_session_expiry(session_id: str, now: datetime) -> datetime | None:
    """When the SSO session expires, or None if it is gone or has ended."""
    state = db.session.execute(_SESSION_STATE, {"id": session_id}).first()
    if state is None or state.ended_at is not None or state.expires_at <= now:
        return None
    return state.expires_at  # type: ignore[no-any-return]


_REVOKED = select(RevokedAccessToken.jti).where(RevokedAccessToken.jti == bindparam("jti"))


def is_revoked(jti: str) -> bool:
    """One indexed lookup, without the ORM's identity map and object loading (hot path)."""
    return bool(list(driversql.one_statement(_REVOKED, {"jti": jti})))


_ONE_ROW = select(literal(1).label("one")).subquery()
_REVOKED_AND_USER = (
    select(exists().where(RevokedAccessToken.jti == bindparam("jti")), User)
    .select_from(_ONE_ROW)
    .outerjoin(User, User.subject == bindparam("sub"))
)


_REVOKED_AND_STATUS = (
    select(exists().where(RevokedAccessToken.jti == bindparam("jti")), User.username,
           User.status)
    .select_from(_ONE_ROW)
    .outerjoin(User, User.subject == bindparam("sub"))
)


@dataclass(frozen=True)
class UserStatusRow:
    """A token user's name and status, read as plain columns (introspection needs no more)."""

    username: str
    status: str


def revocation_and_status(jti: str, subject: str) -> tuple[bool, UserStatusRow | None]:
    """Like :func:`revocation_and_user` without loading the user as an ORM object: one
    statement, two columns, for introspection (issue 15: the entity load was most of it)."""
    row, = driversql.one_statement(_REVOKED_AND_STATUS, {"jti": jti, "sub": subject})
    return bool(row[0]), (UserStatusRow(row[1], row[2]) if row[1] is not None else None)


def revocation_and_token_user(jti: str, subject: str) -> tuple[bool, TokenUser | None]:
    """Like :func:`revocation_and_user`, with the user as plain columns: one statement,
    outside any transaction (UserInfo: the ORM load of the user was most of it)."""
    row, = driversql.one_statement(_REVOKED_AND_TOKEN_USER, {"jti": jti, "sub": subject})
    return bool(row[0]), (TokenUser(*row[1:]) if row[1] is not None else None)


def revocation_and_user(jti: str, subject: str) -> tuple[bool, User | None]:
    """Whether the token is revoked, and its user (None if gone): one statement, one row."""
    db.session.flush()  # a revocation added earlier in this transaction counts
    row = db.session.execute(_REVOKED_AND_USER, {"jti": jti, "sub": subject}).one()
    return bool(row[0]), row[1]


def revoke_access_token(jti: str, expires_at: datetime) -> None:
    if db.session.get(RevokedAccessToken, jti) is None:
        db.session.add(RevokedAccessToken(jti=jti, expires_at=expires_at))


def access_ttl_of(client_id: str | None) -> int:
    """The access-token lifetime of the app (its own, or the setting's)."""
    client = db.session.get(Client, client_id) if client_id else None
    own = client.access_token_ttl if client is not None else None
    return own or int(current_app.config["ACCESS_TOKEN_TTL"])


def longest_access_ttl() -> int:
    """The longest lifetime an access or ID token may have now (the setting or any app's):
    how long a retired signing key must stay published."""
    config = current_app.config
    own = db.session.execute(select(func.max(Client.access_token_ttl),
                                    func.max(Client.id_token_ttl))).one()
    return max(int(config["ACCESS_TOKEN_TTL"]), int(config["ID_TOKEN_TTL"]),
               *(int(v) for v in own if v))


def revoke_family(
    family_id: str, *, reason: str, access_ttl: int | None = None,
    origin: Origin | None = None, client_id: str | None = None, user_id: int | None = None,
) -> None:
    """Revoke every refresh token of a grant and the access tokens issued with them
    (``access_ttl``: the app's access-token lifetime, looked up when not given)."""
    now = utcnow()
    if access_ttl is None:
        access_ttl = access_ttl_of(client_id)
    rows = db.session.scalars(select(RefreshToken).where(RefreshToken.family_id == family_id))
    for row in rows:
        if row.revoked_at is None:
            row.revoked_at = now
        if row.access_expires_at > now:
            revoke_access_token(row.access_jti, row.access_expires_at)
    # The grant's first access token carries the grant id as its jti.
    revoke_access_token(family_id, now + timedelta(seconds=access_ttl))
    audit.record("grant.revoke", origin=origin, client_id=client_id, user_id=user_id,
                 grant_id=family_id, reason=reason)


def revoke_grants(user_id: int, *, client_id: str | None = None, reason: str,
                  origin: Origin | None = None, keep_session: str | None = None,
                  offline_only: bool = False, keep_offline: bool = False) -> int:
    """Revoke every live grant (refresh-token family, with its access tokens) of a user, at
    one app or at all; return how many. ``keep_session`` spares the grants bound to that SSO
    session (the browser that changed the password); ``keep_offline`` spares
    ``offline_access`` grants, ``offline_only`` revokes only them."""
    query = (select(RefreshToken.family_id, RefreshToken.client_id)
             .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
             .distinct())
    if client_id is not None:
        query = query.where(RefreshToken.client_id == client_id)
    if keep_session is not None:
        query = query.where((RefreshToken.session_id.is_(None))
                            | (RefreshToken.session_id != keep_session))
    if keep_offline:
        query = query.where(RefreshToken.session_id.is_not(None))
    if offline_only:
        query = query.where(RefreshToken.session_id.is_(None))
    families = db.session.execute(query).all()
    lifetimes: dict[str, int] = {}
    for family, family_client in families:
        if family_client not in lifetimes:
            lifetimes[family_client] = access_ttl_of(family_client)
        revoke_family(family, reason=reason, access_ttl=lifetimes[family_client],
                      origin=origin, client_id=family_client, user_id=user_id)
    return len(families)


def revoke_session_tokens(session_id: str, *, origin: Origin | None = None) -> None:
    """Sign-out: revoke the refresh tokens bound to this SSO session (not offline ones)."""
    families = db.session.scalars(
        select(RefreshToken.family_id)
        .where(RefreshToken.session_id == session_id, RefreshToken.revoked_at.is_(None))
        .distinct()
    ).all()
    for family in families:
        db.session.execute(
            update(RefreshToken).where(RefreshToken.family_id == family,
                                       RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    if families:
        audit.record("session.tokens_revoked", origin=origin, session_id=session_id,
                     count=len(families))


_USER_BY_ID = select(User).where(User.id == bindparam("user_id"))


_USERS = User.__table__
_REVOKED_AND_TOKEN_USER = (
    select(exists().where(RevokedAccessToken.jti == bindparam("jti")), _USERS.c.id,
           *(_USERS.c[column] for column in _TOKEN_USER_COLUMNS))
    .select_from(_ONE_ROW.outerjoin(_USERS, _USERS.c.subject == bindparam("sub")))
)


def user_for_token(user_id: int) -> User | None:
    user = db.session.scalars(_USER_BY_ID, {"user_id": user_id}).first()
    if user is None or user.status != UserStatus.ACTIVE:
        return None
    return user


def claimed_user_and_session_expiry(row: Any, now: datetime
                                    ) -> tuple[TokenUser | None, datetime | None]:
    """The active user a token is for, and when the SSO session it is bound to expires
    (None: no session, or it is gone or has ended), from the columns a claim read along
    (:func:`read_along`): of a refresh token (:func:`claim_refresh_token_by_value`) or of an
    authorization code (``grants._CLAIM_CODE``)."""
    user = None
    if row.user_subject is not None and row.user_status == UserStatus.ACTIVE:
        user = TokenUser(row.user_id, *(getattr(row, f"user_{column}")
                                        for column in _TOKEN_USER_COLUMNS))
    ended_at, expires_at = row.session_ended_at, row.session_expires_at
    live = expires_at if ended_at is None and expires_at is not None and expires_at > now else None
    return user, live


def forget_successors(now: datetime, grace: float) -> int:
    """Drop sealed answers older than the grace (they can no longer be replayed), and the
    used rows' names of their successors with them; returns how many answers went."""
    before = now - timedelta(seconds=grace)
    answers = db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.answer.is_not(None), RefreshToken.created_at < before)
        .values(answer=None)).rowcount or 0
    db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.successor.is_not(None), RefreshToken.used_at < before)
        .values(successor=None))
    return int(answers)


def purge_expired(now: datetime | None = None) -> int:
    """Delete codes, refresh tokens and revocations that can no longer matter."""
    from .models import AuthorizationCode  # noqa: PLC0415

    now = now or utcnow()
    removed = 0
    for stmt in (
        delete(AuthorizationCode).where(AuthorizationCode.expires_at < now - timedelta(hours=1)),
        delete(RefreshToken).where(RefreshToken.expires_at < now - timedelta(days=1)),
        delete(RevokedAccessToken).where(RevokedAccessToken.expires_at < now),
    ):
        removed += int(db.session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]
    # Sealed refresh answers past their grace can no longer be replayed: drop them (they
    # are counted as removed though their rows stay).
    removed += forget_successors(now, float(current_app.config.get("REFRESH_REUSE_GRACE", 10)))
    return removed
