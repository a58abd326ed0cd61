"""What an administrator does, one function per decision: the ``sso`` admin commands call
these, and the admin console will call the same ones.

Each function finds what it is named by (a login, a client_id, a role), refusing with an
:class:`~sso.admin.AdminError` whose message is ready to show; asks the package that owns the
data to change it; commits; and only then lets out what must leave the process (app events
are tried once at once, mail waits in the outbox). Nothing here reads a request or prints, and
``actor`` names who decided, for the audit log (the commands pass ``cli``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import current_app
from sqlalchemy import select

from .. import branding
from ..accounts import lifecycle
from ..accounts import service as accounts
from ..accounts.policy import PasswordRejected
from ..apps import events
from ..apps import service as apps
from ..audit import record
from ..extensions import db
from ..mfa import policy as mfa_policy
from ..mfa import service as mfa
from ..mfa.crypto import UndecryptableSecret
from ..oidc import clients
from ..oidc.keys import ALGORITHMS
from ..oidc.models import Client
from ..oidc.public import revoke_grants
from ..oidc.tokens import longest_access_ttl, purge_expired
from ..outbox import OutboxMessage
from ..qrlogin import service as qrlogin
from ..sessions import service as sessions
from ..users import service as users
from ..users.models import AppRole, User, UserStatus
from . import AdminError

# Lookups.


def find_user(login: str, *, by_phone: bool = False) -> User:
    """The user whose username or email is ``login`` (with ``by_phone``, also the one account
    with that mobile number, as the account-lifecycle commands accept)."""
    user = lifecycle.find_for_code(login) if by_phone else users.find_by_login(login)
    if user is None:
        raise AdminError(f"no user {login!r}")
    return user


def find_client(client_id: str) -> Client:
    client = clients.get(client_id)
    if client is None:
        raise AdminError(f"no client {client_id!r}")
    return client


def find_role(client_id: str, name: str) -> AppRole:
    role = users.find_role(client_id, name)
    if role is None:
        raise AdminError(f"app {client_id!r} has no role {name!r}")
    return role


def _refused(action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a service call, turning its refusal (a ``ValueError`` with a message for the
    operator: accounts, users, clients, apps, events) into an :class:`AdminError`."""
    try:
        return action(*args, **kwargs)
    except (users.UserError, PasswordRejected, clients.ClientError, apps.AppsError,
            events.EventError, branding.LogoURIError) as error:
        raise AdminError(str(error)) from None


# Users.


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.username)))


def pending_users() -> list[User]:
    """Self-registered users waiting for approval, oldest first."""
    return list(db.session.scalars(select(User).where(User.status == UserStatus.PENDING)
                                   .order_by(User.created_at)))


def create_user(username: str, *, email: str | None, phone: str | None, name: str | None,
                password: str, admin: bool, must_change: bool) -> User:
    """An active user with a password (``must_change``: an initial one, replaced at the first
    sign-in)."""
    user = _refused(accounts.create_user, username, email=email, phone=phone, name=name,
                    password=password, is_admin=admin, must_change=must_change)
    db.session.commit()
    return user


def set_password(login: str, password: str, *, must_change: bool, actor: str) -> None:
    user = find_user(login)
    try:
        accounts.set_password(user, password, must_change=must_change, actor=actor)
    except PasswordRejected as error:
        raise AdminError(f"password refused: {error}") from None
    db.session.commit()


def invite(username: str, *, email: str | None, phone: str | None, name: str | None,
           admin: bool, sms: bool, locale: str | None, actor: str) -> tuple[User, str]:
    """Create an invited user and send the activation; returns the user and the channel."""
    user, channel = _refused(lifecycle.invite, username, email=email, phone=phone, name=name,
                             is_admin=admin, channel="sms" if sms else None, locale=locale,
                             actor=actor)
    db.session.commit()
    return user, channel


def resend_invitation(login: str, *, sms: bool, actor: str) -> str:
    """A new activation link or code (earlier ones stop working); returns the channel."""
    channel = _refused(lifecycle.send_invitation, find_user(login, by_phone=True),
                       channel="sms" if sms else None, actor=actor)
    db.session.commit()
    return channel


def approve_registration(login: str, *, actor: str) -> None:
    _refused(lifecycle.approve, find_user(login, by_phone=True), actor=actor)
    db.session.commit()


def deny_registration(login: str, *, actor: str) -> None:
    _refused(lifecycle.deny, find_user(login, by_phone=True), actor=actor)
    db.session.commit()


def disable_user(login: str, *, actor: str) -> int:
    """Stop the user signing in; returns how many SSO sessions ended."""
    ended = _refused(lifecycle.disable, find_user(login, by_phone=True), actor=actor)
    db.session.commit()
    return ended


def freeze_user(login: str, *, actor: str) -> tuple[int, int]:
    """Disable the user, end every SSO session (the apps are told) and revoke every grant;
    returns (sessions ended, grants revoked)."""
    ended, revoked = _refused(lifecycle.freeze, find_user(login, by_phone=True), actor=actor)
    db.session.commit()
    return ended, revoked


def enable_user(login: str, *, actor: str) -> None:
    _refused(lifecycle.enable, find_user(login, by_phone=True), actor=actor)
    db.session.commit()


def unlock_user(login: str, *, actor: str) -> None:
    lifecycle.unlock(find_user(login, by_phone=True), actor=actor)
    db.session.commit()


# Two-step verification.


def require_mfa_of_user(login: str, required: bool) -> User:
    user = find_user(login)
    mfa_policy.require_for_user(user, required)
    db.session.commit()
    return user


def reset_mfa(login: str, *, end_sessions: bool) -> tuple[User, bool, int]:
    """Remove the user's authenticator, recovery codes and remembered devices (a lost phone)
    and, unless told not to, end their SSO sessions: whoever holds the phone may hold one.
    Returns the user, whether there was an authenticator, and how many sessions ended."""
    user = find_user(login)
    had = mfa.remove(user, origin=None, event="mfa.reset")
    ended = sessions.end_user_sessions(user.id, reason="mfa.reset") if end_sessions else 0
    # Whoever holds the lost phone may hold a grant made with it.
    revoke_grants(user.id, reason="mfa.reset")
    db.session.commit()
    return user, had, ended


def require_mfa_of_role(client_id: str, role: str, required: bool) -> None:
    mfa_policy.require_for_role(find_role(client_id, role), required)
    db.session.commit()


def set_client_mfa(client_id: str, *, required: bool | None, remember_device: bool | None
                   ) -> dict[str, Any]:
    """Set the app's two-step verification policy; returns it."""
    client = find_client(client_id)
    mfa_policy.set_client_policy(client, required=required, remember_device=remember_device)
    db.session.commit()
    return {"mfa_required": client.mfa_required, "remember_device": client.remember_device}


def mfa_status(login: str) -> tuple[User, dict[str, Any]]:
    user = find_user(login)
    return user, mfa_policy.status(user)


def rotate_mfa_key() -> int:
    """Re-encrypt every TOTP seed with the first key; returns how many. All or nothing."""
    try:
        count = mfa.rotate_encryption()
    except UndecryptableSecret as error:
        db.session.rollback()
        raise AdminError(f"{error}; nothing was changed") from None
    db.session.commit()
    return count


# Clients.


def describe_client(client: Client, secret: str | None = None) -> dict[str, Any]:
    """A client as JSON (the secret only when it was just created)."""
    data = {
        "client_id": client.client_id,
        "name": client.name,
        "public": client.is_public,
        "first_party": client.first_party,
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "grant_types": client.grant_types,
        "scope": client.scope,
        "policy": {name: getattr(client, name) for name in clients.POLICY_FIELDS
                   if name != "first_party"},
        "name_zh": client.name_zh,
        "logo_uri": client.logo_uri,
        "logout": {name: getattr(client, name) for name in clients.LOGOUT_FIELDS},
        "lifetimes": {name: getattr(client, name) for name in clients.LIFETIMES},
    }
    if secret:
        data["client_secret"] = secret
    return data


def create_client(name: str, redirect_uris: list[str], *,
                  post_logout_redirect_uris: list[str], public: bool,
                  grant_types: list[str] | None, scope: str | None, first_party: bool,
                  id_token_alg: str, client_id: str | None, activation: str | None,
                  events_endpoint: str | None, mfa_required: bool,
                  name_zh: str | None = None, logo_uri: str | None = None,
                  logout: dict[str, Any] | None = None,
                  lifetimes: dict[str, Any] | None = None,
                  ) -> tuple[Client, str | None]:
    """Register a client; returns it and its secret (``None`` for a public client), which is
    stored only as a hash. ``lifetimes``: its token lifetimes in seconds (``""`` or None: the
    global settings), by column name (``clients.LIFETIMES``)."""
    policy: dict[str, Any] = {"mfa_required": mfa_required}
    if activation is not None:
        policy["activation"] = activation
    if events_endpoint is not None:
        policy["events_endpoint"] = events_endpoint
    client, secret = _refused(
        clients.create_client, name, redirect_uris,
        post_logout_redirect_uris=post_logout_redirect_uris, public=public,
        grant_types=grant_types, scope=scope, first_party=first_party,
        id_token_alg=id_token_alg, client_id=client_id,
        policy=_refused(apps.checked_policy, policy), lifetimes=_lifetimes(lifetimes),
    )
    if name_zh or logo_uri:
        _refused(branding.brand_client, client, name_zh=name_zh, logo_uri=logo_uri)
    if logout:
        _refused(clients.set_logout, client, **logout)
    db.session.commit()
    return client, secret


def _lifetimes(raw: dict[str, Any] | None) -> dict[str, int | None]:
    """Token lifetimes as the console and the CLI give them, as whole seconds or None."""
    return {name: _refused(clients.parse_lifetime, name, value)
            for name, value in (raw or {}).items()}


def update_client(client_id: str, *, activation: str | None, events_endpoint: str | None,
                  name_zh: str | None = None, logo_uri: str | None = None,
                  logout: dict[str, Any] | None = None,
                  lifetimes: dict[str, Any] | None = None) -> Client:
    """Change an app's policy, its Chinese name and logo (None leaves a setting as it is,
    an empty value removes an endpoint, name or logo) and its token lifetimes (a lifetime
    left out stays, ``""`` or None goes back to the global setting)."""
    client = find_client(client_id)
    if lifetimes:
        _refused(clients.set_lifetimes, client, **_lifetimes(lifetimes))
    _refused(apps.configure, client, activation=activation, events_endpoint=events_endpoint)
    if name_zh is not None or logo_uri is not None:
        _refused(branding.brand_client, client, name_zh=name_zh, logo_uri=logo_uri)
    if logout:
        _refused(clients.set_logout, client, **logout)
    db.session.commit()
    return client


def update_registration(client_id: str, *, name: str, redirect_uris: list[str],
                        post_logout_redirect_uris: list[str], grant_types: list[str] | None,
                        scope: str | None, id_token_alg: str,
                        logo_uri: str | None) -> tuple[Client, list[str]]:
    """Replace an app's registration metadata (RFC 7592 §2.2) with the rules of
    :func:`create_client`; returns the app and the names of what changed. A value left out
    takes its default (no logo, no post-logout URIs, the default grant types and scope)."""
    client = find_client(client_id)
    changed = _refused(clients.update_registration, client, name=name,
                       redirect_uris=redirect_uris,
                       post_logout_redirect_uris=post_logout_redirect_uris,
                       grant_types=grant_types, scope=scope, id_token_alg=id_token_alg)
    if (client.logo_uri or "") != (logo_uri or ""):
        _refused(branding.brand_client, client, logo_uri=logo_uri or "")
        changed.append("logo_uri")
    db.session.commit()
    return client, changed


def delete_client(client_id: str) -> None:
    """Remove the client with its roles, consents and tokens."""
    _refused(clients.delete_client, client_id)
    db.session.commit()


def set_number_matching(client_id: str, enabled: bool) -> None:
    try:
        qrlogin.set_number_matching(client_id, enabled)
    except LookupError:
        raise AdminError(f"no client {client_id!r}") from None
    db.session.commit()


# Roles.


def define_role(client_id: str, name: str, description: str | None) -> None:
    find_client(client_id)
    _refused(users.define_role, client_id, name, description)
    db.session.commit()


def roles_of_app(client_id: str) -> list[AppRole]:
    find_client(client_id)
    return users.roles_of_app(client_id)


def grant_role(login: str, client_id: str, name: str) -> None:
    find_client(client_id)
    _refused(users.grant_role, find_user(login), client_id, name)
    db.session.commit()


def revoke_role(login: str, client_id: str, name: str) -> None:
    users.revoke_role(find_user(login), client_id, name)
    db.session.commit()


def delete_role(client_id: str, name: str) -> None:
    """Delete the role and every grant of it."""
    _refused(users.delete_role, client_id, name)
    db.session.commit()


# Activation in apps.

#: What an admin may decide about a user's account in an app, and the service that does it.
APP_DECISIONS: dict[str, Callable[..., Any]] = {
    "provision": apps.provision,
    "approve": apps.approve,
    "deny": apps.deny,
    "revoke": apps.revoke,
}


def decide_app_access(decision: str, client_id: str, login: str, *, actor: str
                      ) -> tuple[Client, User]:
    """Provision, approve, deny or revoke ``login``'s account in the app: decide, commit, then
    try the event to the app once (retries go on from the outbox)."""
    client = find_client(client_id)
    user = find_user(login)
    result = _refused(APP_DECISIONS[decision], user, client, actor=actor)
    db.session.commit()
    events.deliver_now([result[1] if isinstance(result, tuple) else None])
    return client, user


def redeliver_event(message_id: int) -> OutboxMessage:
    """Send a given-up event again (once the app's endpoint is fixed); returns it as it stands
    after this first try."""
    message = _refused(events.redeliver, message_id)
    db.session.commit()
    message_id = message.id
    events.deliver_now([message])
    return db.session.get(OutboxMessage, message_id)


# Keys and maintenance.


def ensure_keys() -> bool:
    """Create any missing signing key; True if one was created."""
    return bool(current_app.extensions["sso_keys"].ensure())


def describe_keys() -> list[dict[str, Any]]:
    """Each key's ``alg``, ``kid`` and ``state`` (active, next, retired)."""
    return list(current_app.extensions["sso_keys"].describe())


def rotate_keys(algorithms: Iterable[str], *, actor: str) -> None:
    """Promote the published next key, retire the active one, publish a new next key (every
    algorithm when ``algorithms`` is empty)."""
    chosen = list(algorithms) or list(ALGORITHMS)
    keys = current_app.extensions["sso_keys"]
    keys.rotate(chosen)
    active = [entry["kid"] for entry in keys.describe() if entry["state"] == "active"]
    record("keys.rotate", actor=actor, algorithms=chosen, active=active)
    db.session.commit()


def import_keys(directory: str, *, actor: str) -> int:
    """Adopt the keys of a ``keyset.json`` directory (see ``KeyStore.import_directory``)."""
    keys = current_app.extensions["sso_keys"]
    added = keys.import_directory(directory)
    active = [entry["kid"] for entry in keys.describe() if entry["state"] == "active"]
    record("keys.import", actor=actor, added=added, active=active)
    db.session.commit()
    return int(added)


def export_keys(directory: str, *, actor: str) -> str:
    """Write the published keys, private parts in clear, to ``directory`` (owner-only files)."""
    path = current_app.extensions["sso_keys"].export_directory(directory)
    record("keys.export", actor=actor, directory=str(directory))
    db.session.commit()
    return str(path)


def reencrypt_keys(*, actor: str) -> int:
    """Encrypt every signing key with the first key-encryption secret."""
    count = current_app.extensions["sso_keys"].reencrypt()
    record("keys.reencrypt", actor=actor, keys=count)
    db.session.commit()
    return int(count)


def longest_token_ttl() -> int:
    """How long a retired signing key must stay published: the longest access- or ID-token
    lifetime in use (the settings' or any app's own)."""
    return longest_access_ttl()


def purge() -> int:
    """Delete expired codes, tokens and revocations; returns how many rows went."""
    removed = purge_expired()
    db.session.commit()
    return removed
