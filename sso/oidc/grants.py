"""Grants, our own: the authorization code's request at /authorize (:func:`code_request`,
:func:`issue_code`; OpenID Connect, PKCE with S256), and at the token endpoint the code's
exchange (:func:`authorization_code`), the refresh token (:func:`refresh_token`) and client
credentials (:func:`client_credentials`). Authlib's grant machinery answers CIBA's token
requests only (:class:`OpenIDCode`)."""

from __future__ import annotations

import hmac
import logging
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc7636.challenge import (
    CODE_CHALLENGE_PATTERN,
    CODE_VERIFIER_PATTERN,
    create_s256_code_challenge,
)
from authlib.oidc.core.grants import OpenIDCode as _OpenIDCode
from authlib.oidc.core.grants.util import is_openid_scope
from flask import current_app
from sqlalchemy import Boolean, and_, bindparam, case, exists, null, or_, select
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from .. import audit, database, driversql
from ..dbtypes import utcnow
from ..extensions import db
from ..security import hash_token, new_token
from ..sessions import service as sessions
from ..sessions.models import SSOSession
from ..users.models import User
from ..web import origin
from . import tokens
from .models import USER_SCOPES, AuthorizationCode, Client, RefreshToken
from .server import JSON_NO_STORE, query_cached_client
from .tokens import GrantFacts, TokenService, TokenUser

log = logging.getLogger(__name__)

#: How a confidential client authenticates (RFC 6749 §2.3.1); a public one uses "none".
CONFIDENTIAL_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
ALL_AUTH_METHODS = [*CONFIDENTIAL_AUTH_METHODS, "none"]
_CODES = AuthorizationCode.__table__


#: The columns of a code its exchange reads (``_CLAIM_CODE`` returns these, then the user's
#: and the SSO session's read along: ``tokens.READ_ALONG``).
CLAIMED_CODE_COLUMNS = ("grant_id", "client_id", "user_id", "redirect_uri",
                        "redirect_uri_given", "scope", "nonce", "code_challenge",
                        "session_id", "auth_time", "acr", "amr")


class ClaimedCode(namedtuple(  # noqa: PYI024
        "_ClaimedCode", (*CLAIMED_CODE_COLUMNS, *tokens.READ_ALONG))):
    """A code's row as its claim returned it (``_CLAIM_CODE``): the exchange only reads it,
    so a named tuple of the columns it reads, without an ORM object's bookkeeping."""

    __slots__ = ()


@dataclass
class SignedIn:
    """The user a code is issued for, with how they signed in (the ``grant_user``)."""

    user: User
    session: SSOSession
    acr: str

    def get_user_id(self) -> str:
        return self.user.subject


def token_service() -> TokenService:
    return current_app.extensions["sso_tokens"]  # type: ignore[no-any-return]


def access_answer(client: Client, user: User | TokenUser | None, scope: str,
                  facts: GrantFacts | None, jti: str, now: datetime
                  ) -> tuple[dict[str, Any], datetime]:
    """A token answer with a new access token (RFC 6749 §5.1), and when that token expires."""
    service = token_service()
    access, access_expires = service.access_token(client, user, scope, facts, jti, now)
    return {"access_token": access, "token_type": "Bearer",
            "expires_in": service.access_ttl_for(client), "scope": scope}, access_expires


class _IssuesTokens:
    """The token answer of an Authlib grant at the token endpoint (CIBA's): an access
    token, and the facts :class:`OpenIDCode` signs its ID token with."""

    request: Any

    def issue(self, client: Client, user: User | TokenUser, scope: str,
              facts: GrantFacts) -> dict[str, Any]:
        token, _ = access_answer(client, user, scope, facts, new_token(nbytes=16), utcnow())
        self.request.grant_facts = facts
        return token


@dataclass(frozen=True, slots=True)
class CodeRequest:
    """An authorization request for a code (RFC 6749 §4.1.1) that passed
    :func:`code_request`'s checks: its client, the redirect URI the answer goes to, the
    scopes granted of those asked for, and the request's parameters."""

    client: Client
    redirect_uri: str
    scope: str
    params: MultiDict[str, str]

    @property
    def redirect_uri_given(self) -> bool:
        return bool(self.params.get("redirect_uri"))


def code_request(params: MultiDict[str, str]) -> CodeRequest:
    """The authorization request's checks (RFC 6749 §4.1.1 and §4.1.2.1, PKCE with S256 only,
    the nonce of OIDC Core §3.1.2.1): the one implementation, with the errors and in the
    order of Authlib's code grant and its OpenID and PKCE extensions, which made them until
    issue 15 (``tests/oidc/test_code_request.py`` holds the two to the same answers). Its
    dispatch, grant object, hooks and request wrapper were a tenth of a signed-in
    authorization and did nothing these checks need.

    The nonce is checked before PKCE, in the order the extensions were registered; Authlib
    kept its hooks in a set, so a request failing both got either error, as the objects'
    addresses fell.

    ``params``: a request that passed ``authorize._precheck`` (each parameter once,
    ``response_type=code``). An error names the redirect URI it may be sent back to once
    the client and that URI are known (``error.redirect_uri``); before, it has none and is
    shown on a page."""
    client_id = params.get("client_id")
    if client_id is None:
        raise InvalidClientError(description="Missing 'client_id' parameter.")
    client = query_cached_client(client_id)
    if not client:
        raise InvalidClientError(description="The client does not exist on this server.")
    redirect_uri = _redirect_uri(params.get("redirect_uri"), client)
    response_type = params.get("response_type")
    if not client.check_response_type(response_type):
        raise UnauthorizedClientError(
            f"The client is not authorized to use 'response_type={response_type}'",
            redirect_uri=redirect_uri)
    try:
        requested = params.get("scope")
        scope = client.get_allowed_scope(requested)
        if is_openid_scope(requested) and len(params.get("nonce") or "") > 255:
            raise InvalidRequestError("'nonce' is too long.")
        _check_code_challenge(params.get("code_challenge"),
                              params.get("code_challenge_method"), client.is_public)
    except OAuth2Error as error:
        error.redirect_uri = redirect_uri
        raise
    return CodeRequest(client, redirect_uri, scope, params)


def _redirect_uri(requested: str | None, client: Client) -> str:
    """The redirect URI the answer goes to: exactly one the client registered, and an error
    that does not echo the (attacker-chosen) URI."""
    if requested:
        if not client.check_redirect_uri(requested):
            raise InvalidRequestError("'redirect_uri' is not registered for this client.")
        return requested
    default = client.get_default_redirect_uri()
    if not default:
        raise InvalidRequestError("Missing 'redirect_uri'.")
    return default


def _check_code_challenge(challenge: str | None, method: str | None, public: bool) -> None:
    """PKCE at the authorization endpoint (RFC 7636 §4.3), S256 only (RFC 9700 §2.1.1) and
    required of a public client: Authlib lets ``plain`` through and a public client without
    a challenge, checking only at the token endpoint; both are refused here, up front."""
    if public and not challenge:
        raise InvalidRequestError("Public clients must use PKCE: send 'code_challenge'.")
    if challenge and method != "S256":
        raise InvalidRequestError("Only 'code_challenge_method=S256' is supported.")
    if not challenge and not method:
        return
    if not challenge:
        raise InvalidRequestError("Missing 'code_challenge'")
    if not CODE_CHALLENGE_PATTERN.match(challenge):
        raise InvalidRequestError("Invalid 'code_challenge'")


def issue_code(request: CodeRequest, signed_in: SignedIn) -> str:
    """Write a new code for ``request`` and ``signed_in`` (RFC 6749 §4.1.2) and return the
    redirect to the client that carries it (its ``state`` too, not yet the issuer).

    The code and its audit event are written if no code of the client has the request's
    nonce (the nonce's replay check, OIDC Core §15.5.2, made where it costs no statement of
    its own): on PostgreSQL as one statement (``_ISSUE_CODE``), alone if the request has
    written nothing else (one round trip instead of four: BEGIN, two INSERTs, COMMIT);
    elsewhere as the code's ``INSERT ... SELECT ... WHERE NOT EXISTS`` (``_INSERT_CODE``)
    and the audit row's INSERT in the request's transaction. A replayed nonce raises
    ``invalid_request``. The row is only ever read back by the statement that consumes it."""
    code = new_token()
    client, params = request.client, request.params
    session = signed_in.session
    now = utcnow()
    values = dict(
        code_hash=hash_token(code),
        grant_id=new_token(nbytes=16),
        client_id=client.client_id,
        user_id=signed_in.user.id,
        redirect_uri=request.redirect_uri,
        redirect_uri_given=request.redirect_uri_given,
        scope=request.scope,
        nonce=params.get("nonce"),
        code_challenge=params.get("code_challenge"),
        code_challenge_method=params.get("code_challenge_method"),
        session_id=session.id,
        auth_time=session.auth_time,
        acr=signed_in.acr,
        amr=list(session.amr or []),
        created_at=now,
        expires_at=now + timedelta(seconds=current_app.config["AUTH_CODE_TTL"]),
    )
    sessions.note_client(session, client.client_id, now)
    audit_row = audit.row("code.issue", origin=origin(), user_id=signed_in.user.id,
                          client_id=client.client_id, session_id=session.id)
    if tokens.rotates_in_one_statement():
        if not driversql.one_statement(_ISSUE_CODE, {
                **values, **{f"audit_{name}": audit_row[name] for name in audit.COLUMNS}}):
            raise InvalidRequestError(NONCE_REPLAYED)
        audit.recorded(audit_row)
    else:
        if not driversql.rows(database.connection(), _INSERT_CODE, values):
            raise InvalidRequestError(NONCE_REPLAYED)
        audit.record_row(audit_row)
    answer = [("code", code)]
    if params.get("state"):
        answer.append(("state", params["state"]))
    return add_params_to_uri(request.redirect_uri, answer)  # type: ignore[no-any-return]


def _replayed(code_hash: str, client: Client) -> None:
    """A code that could not be taken: if this client used it before, revoke what that use
    got (RFC 6749 §4.1.2) and commit it at once, whatever the answer."""
    row = db.session.get(AuthorizationCode, code_hash)
    if row is not None and row.client_id == client.client_id and row.consumed_at is not None:
        db.session.rollback()
        tokens.revoke_family(
            row.grant_id, reason="code_replay",
            access_ttl=token_service().access_ttl_for(client),
            origin=origin(), client_id=client.client_id, user_id=row.user_id,
        )
        audit.record("code.replay", audit.FAILURE, origin=origin(),
                     client_id=client.client_id, user_id=row.user_id)
        db.session.commit()


#: The client's code ``claimed_hash``, unused and unexpired at ``claimed_at``.
_UNUSED_CODE = (_CODES.c.code_hash == bindparam("claimed_hash"),
                _CODES.c.client_id == bindparam("claimed_by"),
                _CODES.c.consumed_at.is_(None), _CODES.c.expires_at > bindparam("claimed_at"))

_CLAIM_CODE = (
    _CODES.update()
    .where(*_UNUSED_CODE)
    .values(consumed_at=bindparam("claimed_at"))
    .returning(*(_CODES.c[name] for name in CLAIMED_CODE_COLUMNS),
               *tokens.read_along("authorization_codes"))
)


#: The code as its claim would return it: why :data:`_EXCHANGE` claimed nothing (:func:`_refused`).
_PEEK_CODE = (
    select(*(_CODES.c[name] for name in CLAIMED_CODE_COLUMNS),
           *tokens.read_along("authorization_codes"))
    .where(*_UNUSED_CODE)
)


#: A code's row as :data:`_EXCHANGE` returns it: :class:`ClaimedCode`'s columns, then whether
#: the exchange wrote a refresh token.
ExchangedCode = namedtuple(  # noqa: PYI024
    "ExchangedCode", (*ClaimedCode._fields, "refreshed"))


def _exchange_statement() -> Any:
    """The whole of a code's exchange as one PostgreSQL statement (:func:`_exchange_at_once`):
    the claim of the client's code, unused, unexpired, its user active, the redirect URI
    and the PKCE verifier matching (:func:`_checked`'s checks, as a ``WHERE``); the audit
    event; and, ``with_refresh``, the grant's first refresh token, whose lifetime is
    ``tokens.refresh_expiry`` and which is written only if it would outlive the request. It
    returns the code's columns with its user's and session's (``tokens.joined_along``).
    Parameters: ``claimed_*`` as :data:`_UNUSED_CODE`, ``given_redirect_uri``,
    ``verifier_challenge`` (the verifier's S256, NULL if none or malformed),
    ``unverified_allowed`` (no verifier, and a confidential client), ``audit_*`` but the
    user, ``new_token_hash``, ``access_expires_at``, ``with_refresh``, and the lifetimes of
    ``tokens.refresh_expiry``. Kept under psycopg's 4,096 characters and 50 parameters,
    past which it would parse the statement again on every execution
    (``tests/perf/test_statements.py``)."""
    codes = _CODES
    claimed = (
        codes.update()
        .where(*_UNUSED_CODE, tokens.user_active(codes),
               or_(codes.c.redirect_uri_given.is_(False),
                   codes.c.redirect_uri == bindparam("given_redirect_uri",
                                                     type_=codes.c.redirect_uri.type)),
               or_(codes.c.code_challenge == bindparam("verifier_challenge",
                                                       type_=codes.c.code_challenge.type),
                   and_(codes.c.code_challenge.is_(None),
                        bindparam("unverified_allowed", type_=Boolean))))
        .values(consumed_at=bindparam("claimed_at"))
        .returning(*(codes.c[name] for name in CLAIMED_CODE_COLUMNS), codes.c.consumed_at)
        .cte("code")
    )
    events = audit.AuditEvent.__table__
    audited = events.insert().from_select(list(audit.COLUMNS), select(*(
        claimed.c.user_id if name == "user_id"
        else bindparam(f"audit_{name}", type_=events.c[name].type)
        for name in audit.COLUMNS))).cte("audited")
    # The new refresh token's session and end, worked out once from the code and its session.
    session_rows = SSOSession.__table__
    now = claimed.c.consumed_at
    lifetime = select(
        case((tokens.is_offline(claimed.c.scope), null()),
             else_=claimed.c.session_id).label("session_id"),
        tokens.refresh_expiry(now, claimed.c.scope, claimed.c.auth_time, claimed.c.session_id,
                              session_rows.c.ended_at, session_rows.c.expires_at
                              ).label("expires_at"),
    ).select_from(claimed.outerjoin(session_rows, session_rows.c.id == claimed.c.session_id)
                  ).cte("lifetime")
    refresh_tokens = RefreshToken.__table__
    refreshed = (
        refresh_tokens.insert()
        .from_select([name for name in tokens.NEW_REFRESH_COLUMNS if name != "answer"], select(
            bindparam("new_token_hash", type_=refresh_tokens.c.token_hash.type),
            claimed.c.grant_id, claimed.c.client_id, claimed.c.user_id, lifetime.c.session_id,
            claimed.c.scope, claimed.c.auth_time, claimed.c.acr, claimed.c.amr,
            claimed.c.grant_id,
            bindparam("access_expires_at", type_=refresh_tokens.c.access_expires_at.type),
            now, lifetime.c.expires_at,
        ).where(bindparam("with_refresh", type_=Boolean), lifetime.c.expires_at > now))
        .returning(refresh_tokens.c.id)
        .cte("refreshed")
    )
    joined, along = tokens.joined_along(claimed)
    return (select(*(claimed.c[name] for name in CLAIMED_CODE_COLUMNS), *along,
                   exists(select(refreshed.c.id)).label("refreshed"))
            .select_from(joined).add_cte(audited))


_EXCHANGE = _exchange_statement()


def _insert_code() -> Any:
    """A new code's row (parameters named as its columns), written only if no code of the
    client has the same nonce (a code without one is always written: ``nonce = NULL`` is
    never true); it returns the code's hash, or no row for a replayed nonce. One statement,
    so the check and the write cannot be told apart by a concurrent authorization."""
    columns = [column for column in _CODES.c if column.name != "consumed_at"]
    row = {column.name: bindparam(column.name, type_=column.type) for column in columns}
    used_nonce = exists().where(_CODES.c.client_id == row["client_id"],
                                _CODES.c.nonce == row["nonce"])
    return (_CODES.insert()
            .from_select([column.name for column in columns],
                         select(*row.values()).where(~used_nonce))
            .returning(_CODES.c.code_hash))


_INSERT_CODE = _insert_code()


def _issue_code() -> Any:
    """:data:`_INSERT_CODE` and the code's audit event (``audit_*``, the columns of
    :func:`sso.audit.row`), written with it, in one PostgreSQL statement: the code's hash,
    or no row (and nothing written) for a replayed nonce."""
    issued = _INSERT_CODE.cte("issued")
    events = audit.AuditEvent.__table__
    audited = events.insert().from_select(list(audit.COLUMNS), select(*(
        bindparam(f"audit_{name}", type_=events.c[name].type) for name in audit.COLUMNS
    )).select_from(issued)).cte("audited")
    return select(issued.c.code_hash).add_cte(audited)


_ISSUE_CODE = _issue_code()


#: Authlib's answer to a replayed nonce (``authlib.oidc.core.grants.util.validate_nonce``).
NONCE_REPLAYED = "Replay attack"

_NONCE_USED = select(_CODES.c.code_hash).where(
    _CODES.c.client_id == bindparam("nonce_client"), _CODES.c.nonce == bindparam("nonce"),
).limit(1)


def nonce_used(client_id: str | None, nonce: str | None) -> bool:
    """Whether the client ``client_id`` has a code with the nonce ``nonce`` (no nonce: no)."""
    return bool(nonce) and bool(driversql.one_statement(_NONCE_USED, {
        "nonce_client": client_id, "nonce": nonce}))


class OpenIDCode(_OpenIDCode):
    """OpenID Connect on Authlib's grant for CIBA's token request: the ID token, signed our
    way (the code's exchange signs its own: :func:`authorization_code`). CIBA's request
    carries no nonce; the code's is checked by :func:`code_request` and :func:`issue_code`."""

    def process_token(self, grant: Any, response: Any) -> Any:
        _status, token, _headers = response
        scope = token.get("scope", "")
        facts: GrantFacts | None = getattr(grant.request, "grant_facts", None)
        if not is_openid_scope(scope) or facts is None:
            return token
        token["id_token"] = token_service().id_token(
            grant.request.client, grant.request.user, scope, facts, token["access_token"],
            utcnow())
        return token

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_create_token_response", self.process_token)


def authorization_code(request: Any) -> Response:
    """The authorization_code grant at the token endpoint: the code's exchange (RFC 6749
    §4.1.3, PKCE's check of RFC 7636 §4.6, the ID token of OIDC Core §3.1.3.3).

    This is the exchange's one implementation, for both transports (``endpoints.token`` sends
    ``grant_type=authorization_code`` here; the authorization request is
    :func:`code_request`'s). It checks what Authlib's grant and its PKCE and OpenID
    extensions checked, in their order and with their errors: the client, authenticated by
    the server's one client authentication and allowed the grant; the code, taken once; the
    redirect URI, exactly the one the code was issued for if it was given; the code verifier
    against the code's challenge (required of a public client); the user, active
    (:func:`_checked`). A refused
    exchange writes nothing and does not burn the code: on SQLite its claim is rolled back
    with the request's transaction (:func:`_exchange_in_steps`), on PostgreSQL the one
    statement that claims the code makes the same checks and writes only if they pass
    (:func:`_exchange_at_once`)."""
    return _answer(request, "authorization_code", "code",
                   lambda client, code: _exchange(client, request, code))


def _answer(request: Any, grant_type: str, parameter: str,
            tokens_for: Callable[[Client, str], dict[str, Any]]) -> Response:
    """The token endpoint's answer for a grant of ours that a user's tokens come from: the
    client authenticated (any method) and allowed ``grant_type``, the request's
    ``parameter`` present, then ``tokens_for(client, value)``; an OAuth error raised on the
    way is answered as the server answers every error."""
    server = current_app.extensions["sso_authorization_server"]
    try:
        client = _client_for(server, request, ALL_AUTH_METHODS, grant_type)
        value = request.form.get(parameter)
        if value is None:
            raise InvalidRequestError(f"Missing '{parameter}' in request.")
        token = tokens_for(client, value)
    except OAuth2Error as error:
        return server.handle_error_response(request, error)  # type: ignore[no-any-return]
    return server.handle_response(200, token, JSON_NO_STORE)  # type: ignore[no-any-return]


def _exchange(client: Client, request: Any, code: str) -> dict[str, Any]:
    now = utcnow()
    if not code or len(code) > 128:
        raise InvalidGrantError("Invalid 'code' in request.")
    code_hash = hash_token(code)
    exchange = (_exchange_at_once if tokens.rotates_in_one_statement()
                else _exchange_in_steps)
    taken, user, refresh = exchange(client, request, code_hash, now)
    facts = _facts_of(taken)
    # The grant's first access token is named by the grant: a second use of the code
    # revokes it by that name (tokens.revoke_family).
    token, _ = access_answer(client, user, taken.scope, facts, taken.grant_id, now)
    if refresh is not None:
        token["refresh_token"] = refresh
    if is_openid_scope(taken.scope):
        token["id_token"] = token_service().id_token(client, user, taken.scope, facts,
                                                     token["access_token"], now)
    return token


def _facts_of(taken: ClaimedCode) -> GrantFacts:
    return GrantFacts(grant_id=taken.grant_id, session_id=taken.session_id,
                      auth_time=taken.auth_time, acr=taken.acr, amr=list(taken.amr or []),
                      nonce=taken.nonce)


def _exchange_in_steps(client: Client, request: Any, code_hash: str, now: datetime
                       ) -> tuple[ClaimedCode, TokenUser, str | None]:
    """The exchange where statements cost no round trip (SQLite): the code claimed
    atomically (``UPDATE ... RETURNING`` claims and loads it), checked, then the refresh
    token and the audit event written, all in the request's transaction, which is rolled
    back if the exchange is refused. The code, its user and the refresh token issued, if
    any."""
    claimed = driversql.rows(database.connection(), _CLAIM_CODE, {
        "claimed_hash": code_hash, "claimed_by": client.client_id, "claimed_at": now},
        ClaimedCode)
    if not claimed:
        _replayed(code_hash, client)
        raise InvalidGrantError("Invalid 'code' in request.")
    taken = claimed[0]
    user, session_expires = _checked(taken, request, now)
    refresh = None
    if client.check_grant_type("refresh_token"):
        if taken.session_id and session_expires is None:
            session_expires = now  # the session has ended: no refresh token outlives it
        service = token_service()
        refresh, row = service.new_refresh_token(
            client, user, taken.scope, _facts_of(taken), taken.grant_id,
            service.access_expiry(client, now), now, session_expires)
        if row["expires_at"] > now:
            tokens.store_refresh_token(row)
        else:
            refresh = None
    audit.record_row(audit.row("token.issue", origin=origin(), user_id=user.id,
                               client_id=client.client_id, grant="authorization_code"))
    return taken, user, refresh


def _exchange_at_once(client: Client, request: Any, code_hash: str, now: datetime
                      ) -> tuple[ClaimedCode, TokenUser, str | None]:
    """The exchange as one PostgreSQL statement (:data:`_EXCHANGE`, in autocommit): one
    round trip, where a read of the code and then its claim with the writes took two. It
    checks in SQL what :func:`_checked` checks; when it claims nothing, :func:`_refused`
    finds out why and answers as the steps would have. The code, its user and the refresh
    token issued, if any."""
    service = token_service()
    verifier = request.form.get("code_verifier")
    refresh = new_token(tokens.REFRESH_PREFIX)
    online_until, offline_until = service.refresh_lifetimes(client, now)
    audit_row = audit.row("token.issue", origin=origin(), client_id=client.client_id,
                          grant="authorization_code")
    params = {
        "claimed_hash": code_hash, "claimed_by": client.client_id, "claimed_at": now,
        "given_redirect_uri": request.payload.redirect_uri,
        "verifier_challenge": (create_s256_code_challenge(verifier)
                               if verifier and CODE_VERIFIER_PATTERN.match(verifier) else None),
        "unverified_allowed": not verifier and request.auth_method != "none",
        "with_refresh": client.check_grant_type("refresh_token"),
        "new_token_hash": hash_token(refresh),
        "access_expires_at": service.access_expiry(client, now),
        "online_until": online_until, "offline_until": offline_until,
        "offline_max": service.offline_max or None,
        **{f"audit_{name}": audit_row[name] for name in audit.COLUMNS if name != "user_id"},
    }
    exchanged = driversql.one_statement(_EXCHANGE, params, ExchangedCode)
    if not exchanged:
        _refused(code_hash, client, request, now)
    taken = ClaimedCode._make(exchanged[0][:-1])
    audit_row["user_id"] = taken.user_id
    audit.recorded(audit_row)
    user, _ = tokens.claimed_user_and_session_expiry(taken, now)
    if user is None:  # the statement claimed the code only if its user was active
        raise InvalidGrantError("There is no 'user' for this code.")
    return taken, user, refresh if exchanged[0].refreshed else None


def _refused(code_hash: str, client: Client, request: Any, now: datetime) -> NoReturn:
    """Why :data:`_EXCHANGE` claimed nothing, answered as :func:`_exchange_in_steps` would:
    the error of the check that fails on the client's live, unused code; else (no such
    code, or it was used meanwhile) an invalid code, a second use revoking what the first
    got."""
    found = driversql.one_statement(_PEEK_CODE, {
        "claimed_hash": code_hash, "claimed_by": client.client_id, "claimed_at": now},
        ClaimedCode)
    if found:
        _checked(found[0], request, now)
    _replayed(code_hash, client)
    raise InvalidGrantError("Invalid 'code' in request.")


def _checked(taken: ClaimedCode, request: Any, now: datetime
             ) -> tuple[TokenUser, datetime | None]:
    """The checks of a code's exchange after the code itself, in Authlib's order and with
    its errors: the redirect URI, exactly the one the code was issued for if it was given;
    the code verifier (:func:`_check_code_verifier`); the user, active. The user and the
    end of the code's SSO session if it is live."""
    if taken.redirect_uri_given and request.payload.redirect_uri != taken.redirect_uri:
        raise InvalidGrantError("Invalid 'redirect_uri' in request.")
    _check_code_verifier(taken.code_challenge, request.form.get("code_verifier"),
                         public=request.auth_method == "none")
    user, session_expires = tokens.claimed_user_and_session_expiry(taken, now)
    if user is None:
        raise InvalidGrantError("There is no 'user' for this code.")
    return user, session_expires


def _check_code_verifier(challenge: str | None, verifier: str | None, public: bool) -> None:
    """PKCE at the token endpoint (RFC 7636 §4.6), S256 only (the authorization request
    refused any other method: :func:`_check_code_challenge`): Authlib's checks and errors."""
    if public and not verifier:
        raise InvalidRequestError("Missing 'code_verifier'")
    if not challenge:
        if verifier:
            raise InvalidRequestError("The authorization request had no 'code_challenge', "
                                      "but a 'code_verifier' was provided.")
        return
    if not verifier:
        raise InvalidRequestError("Missing 'code_verifier'")
    if not CODE_VERIFIER_PATTERN.match(verifier):
        raise InvalidRequestError("Invalid 'code_verifier'")
    if not hmac.compare_digest(create_s256_code_challenge(verifier), challenge):
        raise InvalidGrantError("Code challenge failed.")


def refresh_token(request: Any) -> Response:
    """The refresh_token grant (RFC 6749 §6), with rotation, reuse detection and the reuse
    grace (RFC 9700 §4.14.2; docs/hardening.md "Refresh grace").

    This is the grant's one implementation, for both transports (``endpoints.token`` sends
    ``grant_type=refresh_token`` here; no Authlib grant is registered for it). The client is
    authenticated by the server's one client authentication and errors are answered by the
    server's error answer, as for every grant; the rest is three statements: the claim (which
    reads the user and the session's state along), the audit row and the new token's row
    (with the answer sealed for the reuse grace). What it writes is
    committed by ``endpoints.token`` with a 200 and rolled back otherwise, so a refused
    request (a narrower scope not held, a session that ended) does not burn the token."""
    return _answer(request, "refresh_token", "refresh_token",
                   lambda client, presented: _refresh(client, presented,
                                                      request.payload.scope))


def _refresh(client: Client, presented: str, requested_scope: str | None) -> dict[str, Any]:
    now = utcnow()
    successor = new_token(tokens.REFRESH_PREFIX)
    row = tokens.take_refresh_token(presented, now, successor)
    if row is None:
        return _replay(client, presented, requested_scope, now)
    if row.client_id != client.client_id:
        raise InvalidGrantError()
    _check_narrower_scope(row.scope, requested_scope)
    user, session_expires = tokens.claimed_user_and_session_expiry(row, now)
    if row.session_id is not None and session_expires is None:
        raise InvalidGrantError()  # the SSO session it was bound to has ended
    if user is None:
        raise InvalidGrantError("The user of this token is not active.")
    scope = requested_scope or row.scope
    facts = GrantFacts(grant_id=row.family_id, session_id=row.session_id,
                       auth_time=row.auth_time, acr=row.acr, amr=list(row.amr or []))
    service = token_service()
    jti = new_token(nbytes=16)
    token, access_expires = access_answer(client, user, scope, facts, jti, now)
    # RFC 6749 §6: the new refresh token keeps the original scope even if this access token
    # asked for less.
    refresh, new_row = service.new_refresh_token(
        client, user, row.scope, facts, jti, access_expires, now, session_expires,
        token=successor)
    issues_refresh = new_row["expires_at"] > now
    if issues_refresh:
        token["refresh_token"] = refresh
    if is_openid_scope(scope):
        token["id_token"] = service.id_token(client, user, scope, facts,
                                             token["access_token"], now, include_nonce=False)
    # The answer is sealed for a retry of the old token within the grace: kept by the new
    # token's row, or by the old one where no new token is issued (the session ends now).
    sealed = tokens.seal(token) if current_app.config.get("REFRESH_REUSE_GRACE", 10) else None
    if issues_refresh:
        new_row["answer"] = sealed
    if not tokens.rotate_refresh_token(
            row, now, successor, new_row if issues_refresh else None, sealed,
            audit.row("token.refresh", origin=origin(), user_id=user.id,
                      client_id=client.client_id)):
        # Another use took it first (or its user or session ended): as if it had been
        # found used when taken.
        return _replay(client, presented, requested_scope, now)
    return token


def _replay(client: Client, presented: str, requested_scope: str | None,
            now: datetime) -> dict[str, Any]:
    """A token that could not be claimed: unknown, expired, revoked or used. Used moments
    ago, it is most likely the client retrying after its answer was lost: the same answer
    again. Used before that, it was stolen or leaked: its whole family is revoked."""
    row = tokens.find_refresh_token(presented)
    if (row is None or row.revoked_at is not None or row.expires_at <= now
            or row.used_at is None):  # unused: its user or session ended as it was claimed
        raise InvalidGrantError()
    if row.session_id is not None and tokens.live_session_expiry(row.session_id, now) is None:
        raise InvalidGrantError()
    answer = tokens.open_successor(row, now, float(
        current_app.config.get("REFRESH_REUSE_GRACE", 10)))
    if answer is None:
        _reuse_detected(row)
        raise InvalidGrantError()
    if row.client_id != client.client_id:
        raise InvalidGrantError()
    _check_narrower_scope(row.scope, requested_scope)
    audit.record("refresh.replay", origin=origin(), client_id=row.client_id,
                 user_id=row.user_id)
    return answer


def _check_narrower_scope(granted: str, requested: str | None) -> None:
    """RFC 6749 §6: a refresh may ask for less than was granted, never for more."""
    if requested and not set(requested.split()) <= set(granted.split()):
        raise InvalidScopeError()


def _reuse_detected(row: RefreshToken) -> None:
    """Revoke the family of a refresh token used twice, and commit that at once: the
    request's own answer is an error, whose transaction is rolled back."""
    family, client_id, user_id = row.family_id, row.client_id, row.user_id
    db.session.rollback()
    tokens.revoke_family(family, reason="refresh_reuse", origin=origin(),
                         client_id=client_id, user_id=user_id)
    audit.record("refresh.reuse", audit.FAILURE, origin=origin(), client_id=client_id,
                 user_id=user_id)
    db.session.commit()


def client_credentials(request: Any) -> Response:
    """The client_credentials grant (RFC 6749 §4.4): a confidential client's own access token.

    This is the grant's one implementation, for both transports (``endpoints.token`` sends
    ``grant_type=client_credentials`` here; no Authlib grant is registered for it). Authlib's
    grant dispatch, grant object and hooks cost a sixth of the request and did nothing this
    grant needs; the client is still authenticated by the server's one client authentication,
    the same as every other grant, and errors are answered by the server's error answer."""
    server = current_app.extensions["sso_authorization_server"]
    try:
        client = _client_for(server, request, CONFIDENTIAL_AUTH_METHODS, "client_credentials")
        scope = _service_scope(client, request.payload.scope)
    except OAuth2Error as error:
        return server.handle_error_response(request, error)  # type: ignore[no-any-return]
    token, _ = access_answer(client, None, scope, None, new_token(nbytes=16), utcnow())
    return server.handle_response(200, token, JSON_NO_STORE)  # type: ignore[no-any-return]


def _client_for(server: Any, request: Any, methods: list[str], grant_type: str) -> Client:
    """The client, authenticated by the server's one client authentication with one of
    ``methods``, if it may use ``grant_type``; else the OAuth error to answer."""
    client: Client = server.authenticate_client(request, methods)
    if not client.check_grant_type(grant_type):
        raise UnauthorizedClientError(
            f"The client is not allowed to use 'grant_type={grant_type}'.")
    return client


def _service_scope(client: Client, requested: str | None) -> str:
    """The scope asked for, each once, if the client holds it; else all the client's service
    scopes. User scopes (``openid``, ``profile``...) never go to a client's own token."""
    service_scopes = [s for s in client.scopes() if s not in USER_SCOPES]
    if not requested:
        return " ".join(service_scopes)
    wanted = requested.split()
    if any(s not in service_scopes for s in wanted):
        raise InvalidScopeError("The client may not request that scope.")
    return " ".join(dict.fromkeys(wanted))
