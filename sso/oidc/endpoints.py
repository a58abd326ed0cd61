"""The token endpoint (RFC 6749 §3.2), UserInfo (OIDC Core §5.3), introspection (RFC 7662)
and revocation (RFC 7009). The token endpoint, UserInfo and introspection take the request's
parameters and headers as arguments: both transports of :mod:`.direct` call them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError
from flask import current_app, request
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from .. import audit, database
from ..dbtypes import utcnow
from ..extensions import db
from ..web import origin
from . import protector, tokens, tokenstatus
from .claims import user_claims
from .grants import (
    ALL_AUTH_METHODS,
    CONFIDENTIAL_AUTH_METHODS,
    authorization_code,
    client_credentials,
    refresh_token,
    token_service,
)
from .keys import InvalidJWS
from .models import Client
from .server import (
    FORM,
    NO_STORE,
    ProtocolRequest,
    check_single_auth_method,
    json_response,
    oauth_error,
)


def form_refusal(mimetype: str, has_query: bool, form: MultiDict[str, str],
                 headers: Mapping[str, str]) -> Response | None:
    """Token-style endpoints take form-encoded bodies with each parameter once (RFC 6749 §3.2)
    and one client authentication method (§2.3)."""
    problem = None
    if mimetype != FORM:
        problem = "Send parameters as application/x-www-form-urlencoded."
    elif has_query:
        problem = "Send parameters in the request body, not the query string."
    else:
        limit = current_app.config["MAX_PARAM_LENGTH"]
        too_long = False
        for _name, values in form.lists():
            if len(values) > 1:
                problem = "A parameter is repeated."
                break
            too_long = too_long or len(values[0]) > limit
        else:
            if too_long:
                problem = "A parameter is too long."
    if problem is None:
        try:
            check_single_auth_method(ProtocolRequest("POST", None, headers, form, form))
        except InvalidRequestError as error:
            problem = str(error.description)
    return None if problem is None else oauth_error(InvalidRequestError(problem))


def token(form: MultiDict[str, str], headers: Mapping[str, str]) -> Response:
    """The token endpoint (RFC 6749 §3.2) for a form that passed :func:`form_refusal`."""
    grant_type = form.get("grant_type")
    if not grant_type:
        return oauth_error(InvalidRequestError("Missing 'grant_type'."))
    oauth_request = ProtocolRequest("POST", None, headers, form, form)
    if grant_type == "client_credentials":
        return client_credentials(oauth_request)
    # The grants write with the driver's SQL on a connection held for the request, without
    # an ORM session unless something asks for one (sso.database.Writes).
    with database.request_writes():
        grant = _OUR_GRANTS.get(grant_type)
        if grant is not None:
            response = grant(oauth_request)
        else:  # CIBA's, or an unsupported grant type's error
            server = current_app.extensions["sso_authorization_server"]
            response = server.create_token_response(oauth_request)
        database.finish(commit=response.status_code == 200)
    return response


#: The grants the token endpoint answers itself; Authlib's server answers the others.
_OUR_GRANTS = {"authorization_code": authorization_code, "refresh_token": refresh_token}


def userinfo(request: Any = None) -> Response:
    """UserInfo (OIDC Core §5.3) for Flask's request or ``request`` (:mod:`.direct`'s); a
    refused token raises :class:`.protector.BearerError`, which the app's handler answers."""
    info = protector.require("openid", request, plain_user=True)
    if info.user is None:  # a client's own token: there is no user to describe
        raise protector.BearerError(401, "invalid_token", "The token has no user.")
    return json_response(user_claims(info.user, info.scopes, info.client_id))


def _authenticate_client(methods: list[str], form: MultiDict[str, str],
                         headers: Mapping[str, str]) -> Client:
    oauth_request = ProtocolRequest("POST", None, headers, form, form)
    check_single_auth_method(oauth_request)
    server = current_app.extensions["sso_authorization_server"]
    endpoint = "introspection" if methods == CONFIDENTIAL_AUTH_METHODS else "token"
    return server.authenticate_client(oauth_request, methods, endpoint)  # type: ignore[no-any-return]


def introspection(form: MultiDict[str, str], headers: Mapping[str, str]) -> Response:
    """RFC 7662: a confidential client learns about tokens issued to it or meant for it.

    Called by both transports of :mod:`.direct`; it reads and never writes."""
    try:
        client = _authenticate_client(CONFIDENTIAL_AUTH_METHODS, form, headers)
        token = form.get("token")
        if not token:
            raise InvalidRequestError("Missing 'token'.")
    except OAuth2Error as error:
        return oauth_error(error)
    return json_response(_introspection(token, form.get("token_type_hint"), client))


def _introspection(token: str, hint: str | None, client: Client) -> dict[str, Any]:
    inactive = {"active": False}
    if token.startswith(tokens.REFRESH_PREFIX):
        row = tokens.find_refresh_token(token)
        now = utcnow()
        if (row is None or row.client_id != client.client_id or row.revoked_at or row.used_at
                or row.expires_at <= now):
            return inactive
        user = tokens.user_for_token(row.user_id)
        if user is None:
            return inactive
        return {
            "active": True, "token_type": "refresh_token", "scope": row.scope,
            "client_id": row.client_id, "sub": user.subject, "username": user.username,
            "iss": current_app.config["ISSUER"], "exp": int(row.expires_at.timestamp()),
            "iat": int(row.created_at.timestamp()),
        }
    try:
        info = token_service().validate_access_token(token, status_of=tokenstatus.status)
    except InvalidJWS:
        return inactive
    audience = info.claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if client.client_id != info.client_id and client.client_id not in audiences:
        return inactive
    payload: dict[str, Any] = {"active": True, "token_type": "Bearer", **info.claims}
    if info.claims.get("sub") != info.client_id:
        user = info.user
        if user is None or user.status != "active":
            return inactive
        payload["username"] = user.username
    return payload


def revoke() -> Response:
    """RFC 7009: revoke an access or refresh token the calling client holds."""
    try:
        client = _authenticate_client(ALL_AUTH_METHODS, request.form, request.headers)
        token = request.form.get("token")
        if not token:
            raise InvalidRequestError("Missing 'token'.")
        _revoke(token, client)
    except OAuth2Error as error:
        db.session.rollback()
        return oauth_error(error)
    db.session.commit()
    response = Response(status=200)
    response.headers.extend(NO_STORE)
    return response


def _revoke(token: str, client: Client) -> None:
    service = token_service()
    if token.startswith(tokens.REFRESH_PREFIX):
        row = tokens.find_refresh_token(token)
        if row is None:
            return
        if row.client_id != client.client_id:
            raise InvalidGrantError("The token was not issued to this client.")
        tokens.revoke_family(row.family_id, reason="revocation_endpoint",
                             access_ttl=service.access_ttl_for(client), origin=origin(),
                             client_id=client.client_id, user_id=row.user_id)
        return
    try:
        info = service.validate_access_token(token)
    except InvalidJWS:
        return  # invalid, expired or already revoked: nothing to do (RFC 7009 §2.2)
    if info.client_id != client.client_id:
        raise InvalidGrantError("The token was not issued to this client.")
    tokens.revoke_access_token(str(info.claims["jti"]),
                               datetime.fromtimestamp(int(info.claims["exp"]), UTC))
    audit.record("token.revoke", origin=origin(), client_id=client.client_id,
                 token_type="access_token")
