"""Register, list and remove client apps. The secret is shown once and stored as a hash."""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlsplit

from sqlalchemy import select

from .. import audit
from ..audit import Origin
from ..extensions import db
from ..security import hash_token, new_token
from .models import USER_SCOPES, Client

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]{1,64}$")
DEFAULT_SCOPE = "openid profile email phone offline_access roles"
SECRET_PREFIX = "ssos_"


class ClientError(ValueError):
    pass


def _check_redirect_uri(uri: str, public: bool) -> None:
    """RFC 9700 §4.1.1 / RFC 8252: absolute, no fragment; https, loopback http, or an app's
    private-use scheme (public clients only)."""
    parts = urlsplit(uri)
    if not parts.scheme or parts.fragment or "#" in uri:
        raise ClientError(f"{uri}: must be absolute and without a fragment")
    try:
        parts.port  # noqa: B018 - raises for a port outside 0-65535
    except ValueError:
        raise ClientError(f"{uri}: the port is not a number from 0 to 65535") from None
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"):
        return
    if parts.scheme == "http":
        raise ClientError(f"{uri}: plain http is allowed for loopback addresses only")
    if public and "." in parts.scheme:
        return
    raise ClientError(f"{uri}: use https (or, for a native app, a reverse-DNS private scheme)")


def create_client(
    name: str,
    redirect_uris: list[str],
    *,
    post_logout_redirect_uris: list[str] | None = None,
    public: bool = False,
    grant_types: list[str] | None = None,
    scope: str | None = None,
    first_party: bool = False,
    id_token_alg: str = "RS256",
    client_id: str | None = None,
    settings: dict[str, object] | None = None,
    origin: Origin | None = None,
) -> tuple[Client, str | None]:
    """Register a client; return it and its secret (None for public clients)."""
    name = name.strip()
    if not name or len(name) > 128:
        raise ClientError("name: 1-128 characters")
    grant_types = list(dict.fromkeys(grant_types or ["authorization_code", "refresh_token"]))
    for grant in grant_types:
        if grant not in GRANT_TYPES:
            raise ClientError(f"grant type {grant!r} is not supported")
    if public and "client_credentials" in grant_types:
        raise ClientError("a public client cannot use client_credentials")
    if "authorization_code" in grant_types and not redirect_uris:
        raise ClientError("the authorization_code grant needs at least one redirect URI")
    for uri in [*redirect_uris, *(post_logout_redirect_uris or [])]:
        _check_redirect_uri(uri, public)
    scopes = (scope or DEFAULT_SCOPE).split()
    for item in scopes:
        if not SCOPE_TOKEN.match(item):
            raise ClientError(f"scope {item!r} has characters RFC 6749 §3.3 does not allow")
    if id_token_alg not in ("RS256", "ES256"):
        raise ClientError("id_token_alg must be RS256 or ES256")
    if client_id is not None and (
        not re.match(r"^[A-Za-z0-9._~-]{3,64}$", client_id)
        or db.session.get(Client, client_id) is not None
    ):
        raise ClientError("client_id is taken or not of 3-64 URL-safe characters")
    secret = None if public else new_token(SECRET_PREFIX)
    client = Client(
        client_id=client_id or secrets.token_hex(16),
        secret_hash=hash_token(secret) if secret else None,
        name=name,
        redirect_uris=list(redirect_uris),
        post_logout_redirect_uris=list(post_logout_redirect_uris or []),
        grant_types=grant_types,
        scope=" ".join(dict.fromkeys(scopes)),
        token_endpoint_auth_method="none" if public else "client_secret_basic",
        first_party=first_party,
        id_token_signed_response_alg=id_token_alg,
        settings=dict(settings or {}),
    )
    db.session.add(client)
    db.session.flush()
    audit.record("client.create", origin=origin, client_id=client.client_id, public=public)
    return client, secret


def list_clients() -> list[Client]:
    return list(db.session.scalars(select(Client).order_by(Client.created_at)))


def get(client_id: str) -> Client | None:
    return db.session.get(Client, client_id)


def delete_client(client_id: str, origin: Origin | None = None) -> None:
    client = db.session.get(Client, client_id)
    if client is None:
        raise ClientError(f"no client {client_id!r}")
    db.session.delete(client)
    audit.record("client.delete", origin=origin, client_id=client_id)


def user_scopes() -> tuple[str, ...]:
    return USER_SCOPES
