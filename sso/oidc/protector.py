"""The one resource protector for endpoints that take a bearer access token (RFC 6750).

UserInfo, the QR phone API and the admin API all call :func:`require`: the token is found
where RFC 6750 allows (the ``Authorization`` header, or a form-encoded POST body, never the
query string), validated by Authlib's ``ResourceProtector`` with our JWT validator
(signature, type, issuer, expiry, revocation, the user still active) and checked for scope.
Any failure raises :class:`BearerError`, which Flask answers with the JSON error and its
``WWW-Authenticate`` challenge (an error handler registered in ``oidc.init_app``).
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    MissingAuthorizationError,
    ResourceProtector,
    UnsupportedTokenTypeError,
)
from authlib.oauth2.rfc6750 import BearerTokenValidator, InsufficientScopeError
from flask import Flask, current_app, jsonify
from flask import request as flask_request
from werkzeug.wrappers import Response

from .grants import token_service
from .keys import InvalidJWS
from .server import NO_STORE
from .tokens import AccessTokenInfo


class BearerError(Exception):
    """A refused bearer request; ``error`` None means no credentials were sent (RFC 6750
    §3.1: a bare challenge, no error code)."""

    def __init__(self, status: int, error: str | None, description: str = "",
                 scope: str | None = None) -> None:
        super().__init__(description or error or "unauthorized")
        self.status = status
        self.error = error
        self.description = description
        self.scope = scope

    def response(self) -> Response:
        challenge = f'Bearer realm="{current_app.config["ISSUER"]}"'
        if self.error:
            challenge += f', error="{self.error}"'
            if self.description:
                challenge += f', error_description="{self.description}"'
            if self.scope:
                challenge += f', scope="{self.scope}"'
            response = jsonify(error=self.error, error_description=self.description)
        else:
            response = Response(status=self.status, mimetype="text/plain")
        response.status_code = self.status
        response.headers["WWW-Authenticate"] = challenge
        response.headers.extend(NO_STORE)
        return response


class _Token:
    """Authlib's view of a validated access token."""

    def __init__(self, info: AccessTokenInfo) -> None:
        self.info = info

    def get_scope(self) -> str:
        return " ".join(self.info.scopes)

    def is_expired(self) -> bool:
        return False  # checked when it was authenticated

    def is_revoked(self) -> bool:
        return False  # checked when it was authenticated


class JWTAccessTokenValidator(BearerTokenValidator):  # type: ignore[misc]
    """Our RFC 9068 access tokens, with their user loaded in the revocation check: the ORM
    ``User``, or (``plain_user``) a :class:`.tokens.TokenUser` of the columns claims read."""

    def __init__(self, plain_user: bool = False) -> None:
        super().__init__()
        self.plain_user = plain_user

    def authenticate_token(self, token_string: str) -> _Token | None:
        try:
            return _Token(token_service().validate_access_token(
                token_string.strip(), with_user=not self.plain_user,
                with_token_user=self.plain_user))
        except InvalidJWS:
            return None


class _Protector(ResourceProtector):  # type: ignore[misc]
    def parse_request_authorization(self, request: Any) -> tuple[Any, str]:
        """The token from the header or (RFC 6750 §2.2) a form body; never the query."""
        header = request.headers.get("Authorization", "")
        form_token = request.form.get("access_token") if request.method == "POST" else None
        if "access_token" in request.args:
            raise BearerError(400, "invalid_request",
                              "Tokens in the query string are not accepted.")
        if header and form_token:
            raise BearerError(400, "invalid_request", "Use one way to send the token.")
        if form_token:
            return self.get_token_validator("bearer"), form_token
        scheme, _sep, value = header.strip().partition(" ")
        if header and scheme.lower() != "bearer":
            raise BearerError(400, "invalid_request", "Send 'Authorization: Bearer <token>'.")
        if header and not value.strip():
            # An empty "Bearer" carries no credentials: a bare challenge (RFC 6750 §3.1).
            raise BearerError(401, None)
        return super().parse_request_authorization(request)  # type: ignore[no-any-return]


_protector = _Protector()
_protector.register_token_validator(JWTAccessTokenValidator())
_plain_protector = _Protector()
_plain_protector.register_token_validator(JWTAccessTokenValidator(plain_user=True))


def require(scope: str | None = None, request: Any = None, *,
            plain_user: bool = False) -> AccessTokenInfo:
    """The valid access token of this request, with ``scope`` if given; or raise
    :class:`BearerError`. A token of a user who is no longer active is invalid.

    ``request`` is Flask's unless given: anything with its ``method``, ``headers``, ``form``
    and ``args`` (a request answered in front of Flask, :mod:`.direct`). ``plain_user``:
    ``info.user`` is a :class:`.tokens.TokenUser` (the columns claims read, without the ORM
    load), for a caller that only describes the user."""
    protector = _plain_protector if plain_user else _protector
    try:
        token = protector.validate_request([scope] if scope else None,
                                           request or flask_request)
    except BearerError:
        raise
    except MissingAuthorizationError:
        raise BearerError(401, None) from None
    except UnsupportedTokenTypeError:
        raise BearerError(400, "invalid_request",
                          "Send 'Authorization: Bearer <token>'.") from None
    except InsufficientScopeError:
        raise BearerError(403, "insufficient_scope",
                          f"The token lacks the {scope} scope.", scope) from None
    except OAuth2Error:
        raise BearerError(401, "invalid_token",
                          "The access token is invalid or expired.") from None
    info: AccessTokenInfo = token.info
    user = info.user
    is_user_token = info.claims.get("sub") != info.client_id
    if is_user_token and (user is None or user.status != "active"):
        raise BearerError(401, "invalid_token", "The user is no longer active.")
    return info


def init_app(app: Flask) -> None:
    app.register_error_handler(BearerError, lambda error: error.response())
