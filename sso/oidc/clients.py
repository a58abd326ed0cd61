"""Register, list and remove client apps. The secret is shown once and stored as a hash."""

from __future__ import annotations

import copy
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, has_app_context
from sqlalchemy import event, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from .. import audit
from ..audit import Origin
from ..extensions import db
from ..flow import AppPolicy
from ..security import hash_token, new_token
from ..taggedcache import TaggedCache
from .models import USER_SCOPES, Client

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials",
               "urn:openid:params:grant-type:ciba")
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


def _registration(
    name: str, redirect_uris: list[str], *, post_logout_redirect_uris: list[str] | None,
    public: bool, grant_types: list[str] | None, scope: str | None, id_token_alg: str,
) -> dict[str, Any]:
    """The registration metadata checked and normalised, as the client's column values: the
    one set of rules for registering (console, CLI, RFC 7591) and for replacing it (RFC 7592)."""
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
    return {"name": name, "redirect_uris": list(redirect_uris),
            "post_logout_redirect_uris": list(post_logout_redirect_uris or []),
            "grant_types": grant_types, "scope": " ".join(dict.fromkeys(scopes)),
            "id_token_signed_response_alg": id_token_alg}


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
    policy: dict[str, Any] | None = None,
    lifetimes: dict[str, int | None] | None = None,
    origin: Origin | None = None,
) -> tuple[Client, str | None]:
    """Register a client; return it and its secret (None for public clients).

    ``policy`` sets the app's sign-in policy columns (:data:`POLICY_FIELDS`), already
    validated by the package that owns each (apps: activation and events endpoint);
    ``lifetimes`` its token lifetimes (:func:`set_lifetimes`).
    """
    values = _registration(name, redirect_uris,
                           post_logout_redirect_uris=post_logout_redirect_uris, public=public,
                           grant_types=grant_types, scope=scope, id_token_alg=id_token_alg)
    if client_id is not None and (
        not re.match(r"^[A-Za-z0-9._~-]{3,64}$", client_id)
        or db.session.get(Client, client_id) is not None
    ):
        raise ClientError("client_id is taken or not of 3-64 URL-safe characters")
    secret = None if public else new_token(SECRET_PREFIX)
    client = Client(
        client_id=client_id or secrets.token_hex(16),
        secret_hash=hash_token(secret) if secret else None,
        token_endpoint_auth_method="none" if public else "client_secret_basic",
        first_party=first_party,
        **values,
    )
    _set_policy(client, policy or {})
    if lifetimes:
        _set_lifetimes(client, lifetimes)
    db.session.add(client)
    db.session.flush()
    audit.record("client.create", origin=origin, client_id=client.client_id, public=public)
    return client, secret


def update_registration(
    client: Client, *, name: str, redirect_uris: list[str],
    post_logout_redirect_uris: list[str] | None, grant_types: list[str] | None,
    scope: str | None, id_token_alg: str, origin: Origin | None = None,
) -> list[str]:
    """Replace the client's registration metadata, checked by :func:`create_client`'s rules
    (an omitted value falls back to its default); return the names of what changed. Whether
    the client is public, its id, secret and policy stay as they are."""
    values = _registration(name, redirect_uris,
                           post_logout_redirect_uris=post_logout_redirect_uris,
                           public=client.is_public, grant_types=grant_types, scope=scope,
                           id_token_alg=id_token_alg)
    changed = [key for key, value in values.items() if getattr(client, key) != value]
    for key in changed:
        setattr(client, key, values[key])
    if changed:
        audit.record("client.update", origin=origin, client_id=client.client_id,
                     changed=changed)
    return changed


#: Per-app token lifetimes (seconds): the column, what the refusals call it, and its bounds.
#: Access and ID tokens are short-lived by design (a JWT cannot be recalled before ``exp``
#: other than by the revocation list): one minute to a day. Refresh tokens: one minute to a
#: year. None (the default) follows the global settings.
LIFETIMES = {
    "access_token_ttl": ("access token lifetime", 60, 24 * 3600),
    "id_token_ttl": ("ID token lifetime", 60, 24 * 3600),
    "refresh_token_ttl": ("refresh token lifetime", 60, 365 * 24 * 3600),
}


def parse_lifetime(field: str, text: str | int | None) -> int | None:
    """A lifetime as a form or an option gives it: empty (or ``default``) is the global
    setting."""
    if field not in LIFETIMES:
        raise ClientError(f"unknown lifetime(s): {field}")
    label = LIFETIMES[field][0]
    if text is None or (isinstance(text, str) and text.strip().lower() in ("", "default")):
        return None
    if isinstance(text, str):
        if not text.strip().isdigit() or len(text.strip()) > 9:
            raise ClientError(f"{label}: a whole number of seconds")
        return int(text.strip())
    return text


def _set_lifetimes(client: Client, values: dict[str, int | None]) -> dict[str, int | None]:
    unknown = set(values) - set(LIFETIMES)
    if unknown:
        raise ClientError(f"unknown lifetime(s): {', '.join(sorted(unknown))}")
    changed: dict[str, int | None] = {}
    for field, value in values.items():
        label, low, high = LIFETIMES[field]
        if field != "refresh_token_ttl" and has_app_context():
            # A token must outlive no key that signed it: a retired key is published for
            # KEY_RETIREMENT_GRACE seconds (a day by default).
            high = min(high, int(current_app.config["KEY_RETIREMENT_GRACE"]))
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not low <= value <= high):
            raise ClientError(f"{label}: {low} to {high} seconds, or empty for the default")
        if getattr(client, field) != value:
            setattr(client, field, value)
            changed[field] = value
    return changed


def set_lifetimes(client: Client, *, origin: Origin | None = None,
                  **values: int | None) -> None:
    """Set the app's token lifetimes (None: the global setting) within :data:`LIFETIMES`."""
    changed = _set_lifetimes(client, values)
    if changed:
        audit.record("client.update", origin=origin, client_id=client.client_id, **changed)


#: The typed policy columns of a client, and who reads them.
POLICY_FIELDS = ("first_party", "mfa_required", "remember_device", "activation",
                 "qr_number_matching", "events_endpoint", "qr_refuse_remote",
                 "ciba_mode", "ciba_notification_endpoint")


def _set_policy(client: Client, changes: dict[str, Any]) -> None:
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise ClientError(f"unknown policy setting(s): {', '.join(sorted(unknown))}")
    for name, value in changes.items():
        setattr(client, name, value)


def update_policy(client: Client, *, origin: Origin | None = None, **changes: Any) -> None:
    """Change an app's sign-in policy columns (the one place that writes them) and audit it."""
    _set_policy(client, changes)
    if changes:
        audit.record("client.update", origin=origin, client_id=client.client_id,
                     **{name: value for name, value in changes.items()})


LOGOUT_FIELDS = ("backchannel_logout_uri", "backchannel_logout_session_required",
                 "frontchannel_logout_uri", "frontchannel_logout_session_required")


def set_logout(client: Client, *, origin: Origin | None = None, **changes: Any) -> None:
    """Set how the app hears of a session's end (Back-/Front-Channel Logout 1.0): a URI
    (``""`` removes it, None leaves it) and whether it needs ``sid``."""
    from .singlelogout import LogoutURIError, check_logout_uri  # noqa: PLC0415

    unknown = set(changes) - set(LOGOUT_FIELDS)
    if unknown:
        raise ClientError(f"unknown logout setting(s): {', '.join(sorted(unknown))}")
    applied: dict[str, Any] = {}
    for name, value in changes.items():
        if value is None:
            continue
        if name.endswith("_uri"):
            try:
                value = check_logout_uri(value, name) if value.strip() else None
            except LogoutURIError as error:
                raise ClientError(str(error)) from None
        else:
            value = bool(value)
        setattr(client, name, value)
        applied[name] = value
    if applied:
        audit.record("client.update", origin=origin, client_id=client.client_id, **applied)


def policy_of(client: Client) -> AppPolicy:
    """The app's sign-in policy, as the flow's steps read it."""
    return AppPolicy(
        first_party=bool(client.first_party),
        mfa_required=bool(client.mfa_required),
        remember_device=client.remember_device is not False,
        activation=client.activation or "auto",
        qr_number_matching=bool(client.qr_number_matching),
        qr_refuse_remote=bool(client.qr_refuse_remote),
    )


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


class ClientCache(TaggedCache[str, Client]):
    """Clients by id, kept in each worker process between requests (:mod:`sso.taggedcache`).

    The token, introspection and revocation endpoints authenticate a client on every call;
    reading it from the database each time was the largest cost of ``client_credentials``.
    Entries are read-only snapshots, valid while the clients' generation is unchanged: any
    committed change to a client (an ORM insert, update or delete, seen by the session
    listeners below) sets a fresh one, so a deleted client or a changed secret stops working
    everywhere within ``check_interval``. Only the endpoints that authenticate clients read
    through it (``server.query_client``); services that change clients load them from the
    database as before.
    """

    def __init__(self, redis_store: Any, max_age: float = 30.0,
                 check_interval: float = 1.0) -> None:
        super().__init__(redis_store, ("oidc", "clients"), "clients", max_age=max_age,
                         check_interval=check_interval)

    def get(self, client_id: str, now: float | None = None) -> Client | None:
        return self.lookup(client_id, lambda: _loaded(client_id), now)


def _loaded(client_id: str) -> Client | None:
    client = db.session.get(Client, client_id)
    return None if client is None else _snapshot(client)


def _snapshot(client: Client) -> Client:
    """A transient copy that belongs to no database session, so it outlives the request."""
    columns = sa_inspect(Client).column_attrs
    return Client(**{c.key: copy.deepcopy(getattr(client, c.key)) for c in columns})


def cached(client_id: str) -> Client | None:
    """The client, from this worker's cache (see :class:`ClientCache`); read-only."""
    cache = current_app.extensions.get(CACHE_EXTENSION)
    if cache is None:
        cache = current_app.extensions.setdefault(
            CACHE_EXTENSION, ClientCache(current_app.extensions["sso_redis"]))
    return cache.get(client_id)  # type: ignore[no-any-return]


CACHE_EXTENSION = "sso_client_cache"
_CHANGED = "sso_clients_changed"


@event.listens_for(Session, "after_flush")
def _note_change(session: Session, _context: Any) -> None:
    touched = (*session.new, *session.dirty, *session.deleted)
    if any(isinstance(obj, Client) for obj in touched):
        session.info[_CHANGED] = True


@event.listens_for(Session, "do_orm_execute")
def _note_bulk_change(state: Any) -> None:
    if (state.is_update or state.is_delete) and state.bind_mapper is sa_inspect(Client):
        state.session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _invalidate_after_commit(session: Session) -> None:
    """Any commit that inserted, changed or deleted a client invalidates every worker's cache."""
    if session.info.pop(_CHANGED, False) and has_app_context():
        cache = current_app.extensions.get(CACHE_EXTENSION)
        if cache is not None:
            cache.invalidate()
        else:
            ClientCache(current_app.extensions["sso_redis"]).invalidate()


@event.listens_for(Session, "after_rollback")
def _forget_change(session: Session) -> None:
    session.info.pop(_CHANGED, None)
