"""What the admin console does, one function per action, each checked against the admin's
:class:`~sso.admin.remit.Remit` and audited as ``admin.<action>`` with the admin, the target
and the change.

The functions call :mod:`sso.admin.service` (the same decisions the ``sso`` commands make)
and the owning packages; they read no request. Something outside the admin's remit raises
:class:`OutOfRemit`, which the console answers with 404, the same as something that does not
exist, so an app admin learns nothing of other apps.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from ..accounts import lifecycle
from ..apps import service as apps
from ..apps.models import AppAccount, AppAccountStatus
from ..audit import Origin, record
from ..dbtypes import utcnow
from ..extensions import db
from ..oidc import clients
from ..oidc.models import Client, RefreshToken
from ..security import hash_token, new_token
from ..sessions import service as sessions
from ..sessions.models import SSOSession
from ..users import service as users
from ..users.models import User, UserStatus
from . import AdminError, service, users_query
from . import remit as remits
from .remit import Remit


class OutOfRemit(LookupError):
    """Not there, or not the admin's to see: answered as 404."""


class ReadOnly(PermissionError):
    """The admin may look but not change this (an auditor, an app admin on users)."""


def audit(remit: Remit, action: str, *, user_id: int | None = None,
          client_id: str | None = None, origin: Origin | None = None, **change: Any) -> None:
    record(f"admin.{action}", origin=origin, user_id=user_id, client_id=client_id,
           actor=remit.actor, admin_id=remit.user_id, change=change)


def _must_change_users(remit: Remit) -> None:
    if not remit.may_change_users:
        raise ReadOnly()


# Users.


def user(remit: Remit, user_id: int | str) -> User:
    """The user, if the admin may see them; anything else (a forged or foreign id) is
    :class:`OutOfRemit`."""
    if isinstance(user_id, str):
        if not user_id.isdigit() or len(user_id) > 12:
            raise OutOfRemit()
        user_id = int(user_id)
    found = users_query.find(remit, user_id)
    if found is None:
        raise OutOfRemit()
    return found


def _changeable_user(remit: Remit, user_id: int | str) -> User:
    """The user, if the admin may see them (else 404) and change them (else 403)."""
    found = user(remit, user_id)
    _must_change_users(remit)
    return found


def create_user(remit: Remit, *, username: str, email: str | None, phone: str | None,
                name: str | None, invite_by: str, password: str | None,
                origin: Origin | None = None, locale: str | None = None) -> User:
    """Create a user: invited (link by email or code by SMS) or active with an initial
    password that must be changed at the first sign-in."""
    _must_change_users(remit)
    if invite_by in ("email", "sms"):
        created, _channel = service.invite(username, email=email, phone=phone, name=name,
                                           admin=False, sms=invite_by == "sms", locale=locale,
                                           actor=remit.actor)
    elif invite_by == "password":
        if not password:
            raise AdminError("password: required for an account without invitation")
        created = service.create_user(username, email=email, phone=phone, name=name,
                                      password=password, admin=False, must_change=True)
    else:
        raise AdminError("invite: email, sms or password")
    audit(remit, "user.create", user_id=created.id, origin=origin, username=created.username,
          invite_by=invite_by)
    db.session.commit()
    return created


def edit_user(remit: Remit, user_id: int | str, *, name: str | None, email: str | None,
              phone: str | None, origin: Origin | None = None) -> User:
    found = _changeable_user(remit, user_id)
    # A field the form did not send stays as it is; an empty one is removed.
    name = found.name if name is None else name
    email = found.email if email is None else users.normalise_email(email)
    phone = found.phone if phone is None else users.normalise_phone(phone)
    if email and not users.EMAIL_PATTERN.match(email):
        raise AdminError("email: not a valid address")
    if phone and not users.PHONE_PATTERN.match(phone):
        raise AdminError("phone: digits only, optionally with a leading +")
    if email and email != found.email and db.session.scalar(
            select(User.id).where((User.email == email) | (User.username == email))):
        raise AdminError("a user with that username or email already exists")
    change: dict[str, Any] = {}
    for field, value in (("name", (name or "").strip()[:128] or None), ("email", email),
                         ("phone", phone)):
        if getattr(found, field) != value:
            change[field] = {"from": getattr(found, field), "to": value}
            setattr(found, field, value)
            if field == "email":
                found.email_verified = False
            if field == "phone":
                found.phone_verified = False
    if change:
        audit(remit, "user.edit", user_id=found.id, origin=origin, **change)
    db.session.commit()
    return found


#: What the status buttons do, and the service for each.
STATUS_ACTIONS = ("disable", "enable", "unlock")


def set_status(remit: Remit, user_id: int | str, action: str, origin: Origin | None = None) -> None:
    found = _changeable_user(remit, user_id)
    if action not in STATUS_ACTIONS:
        raise AdminError("action: disable, enable or unlock")
    if action == "disable" and found.id == remit.user_id:
        raise AdminError("you cannot disable yourself")
    before = found.status
    {"disable": service.disable_user, "enable": service.enable_user,
     "unlock": service.unlock_user}[action](found.username, actor=remit.actor)
    audit(remit, f"user.{action}", user_id=found.id, origin=origin,
          status={"from": before, "to": found.status})
    db.session.commit()


def bulk_status(remit: Remit, user_ids: list[int], action: str,
                origin: Origin | None = None) -> tuple[int, list[str]]:
    """Apply ``action`` to each selected user; returns how many changed and why others did
    not (each user in its own transaction, so one refusal does not undo the others)."""
    _must_change_users(remit)
    if action not in STATUS_ACTIONS:
        raise AdminError("action: disable, enable or unlock")
    done, refused = 0, []
    for user_id in user_ids[:1000]:
        try:
            set_status(remit, user_id, action, origin)
            done += 1
        except (AdminError, OutOfRemit) as error:
            db.session.rollback()
            refused.append(f"{user_id}: {error or 'not found'}")
    return done, refused


def send_reset_link(remit: Remit, user_id: int | str, origin: Origin | None = None) -> None:
    found = _changeable_user(remit, user_id)
    if found.status != UserStatus.ACTIVE or not found.email:
        raise AdminError("a reset link needs an active user with an email address")
    lifecycle.request_reset(found.username, origin=origin)
    audit(remit, "user.reset_password", user_id=found.id, origin=origin, channel="email")
    db.session.commit()


def reset_mfa(remit: Remit, user_id: int | str, origin: Origin | None = None) -> int:
    found = _changeable_user(remit, user_id)
    _user, had, ended = service.reset_mfa(found.username, end_sessions=True)
    audit(remit, "user.reset_mfa", user_id=found.id, origin=origin, had_authenticator=had,
          sessions_ended=ended)
    db.session.commit()
    return ended


def change_role(remit: Remit, user_id: int | str, client_id: str, role: str, grant: bool,
                origin: Origin | None = None) -> None:
    """Grant or take back an app role; an app admin only in their apps."""
    if not remit.may_read_app(client_id):
        raise OutOfRemit()
    if not remit.may_change_app(client_id):
        raise ReadOnly()
    found = user(remit, user_id)
    if grant:
        service.grant_role(found.username, client_id, role)
    else:
        service.revoke_role(found.username, client_id, role)
    audit(remit, "user.role", user_id=found.id, client_id=client_id, origin=origin,
          role=role, granted=grant)
    db.session.commit()


def app_accounts_visible(remit: Remit, found: User) -> list[AppAccount]:
    return [a for a in db.session.scalars(select(AppAccount).where(
        AppAccount.user_id == found.id).order_by(AppAccount.client_id))
        if remit.may_read_app(a.client_id)]


def change_admin_grant(remit: Remit, user_id: int | str, role: str, client_id: str | None,
                       grant: bool, origin: Origin | None = None) -> None:
    """Only a super admin hands out admin remits."""
    found = _changeable_user(remit, user_id)
    if client_id and clients.get(client_id) is None:
        raise AdminError(f"no client {client_id!r}")
    if grant:
        remits.grant(found, role, client_id, actor=remit.actor)
    else:
        remits.revoke(found, role, client_id)
    audit(remit, "admin_grant", user_id=found.id, client_id=client_id, origin=origin,
          role=role, granted=grant)
    db.session.commit()


# Sessions.


def sessions_of(remit: Remit, user_id: int | str) -> list[SSOSession]:
    found = user(remit, user_id)
    return list(db.session.scalars(select(SSOSession).where(
        SSOSession.user_id == found.id, SSOSession.ended_at.is_(None),
        SSOSession.expires_at > utcnow()).order_by(SSOSession.last_seen_at.desc())))


def apps_reached(sessions_shown: list[SSOSession]) -> dict[str, list[str]]:
    """The apps each session signed in to (those holding its refresh tokens)."""
    ids = [s.id for s in sessions_shown]
    if not ids:
        return {}
    found: dict[str, list[str]] = {}
    for session_id, client_id in db.session.execute(
            select(RefreshToken.session_id, RefreshToken.client_id).where(
                RefreshToken.session_id.in_(ids)).distinct().order_by(RefreshToken.client_id)):
        found.setdefault(session_id, []).append(client_id)
    return found


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("MicroMessenger", "WeChat"),
             ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (("Windows", "Windows"), ("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iOS"),
            ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))


def device_of(user_agent: str | None) -> str:
    """"Chrome on Windows" from a user agent, for the sessions list (the full string is kept
    in the audit log)."""
    text = user_agent or ""
    browser = next((name for mark, name in _BROWSERS if mark in text), "")
    system = next((name for mark, name in _SYSTEMS if mark in text), "")
    if browser and system:
        return f"{browser} / {system}"
    return browser or system or text[:40]


def end_session(remit: Remit, user_id: int | str, session_id: str,
                origin: Origin | None = None) -> None:
    found = _changeable_user(remit, user_id)
    session = sessions.get(session_id[:43])
    if session is None or session.user_id != found.id or not session.is_active(utcnow()):
        raise OutOfRemit()
    sessions.end_session(session, reason="admin", origin=origin)
    audit(remit, "session.end", user_id=found.id, origin=origin, session=session.id)
    db.session.commit()


def end_all_sessions(remit: Remit, user_id: int | str, origin: Origin | None = None) -> int:
    found = _changeable_user(remit, user_id)
    ended = sessions.end_user_sessions(found.id, reason="admin", origin=origin)
    audit(remit, "session.end_all", user_id=found.id, origin=origin, ended=ended)
    db.session.commit()
    return ended


def freeze(remit: Remit, user_id: int | str, origin: Origin | None = None) -> tuple[int, int]:
    """Disable the account, end its sessions and revoke its grants at every app, in one
    action (an account that looks taken over): the service ``sso users freeze`` calls.
    Returns sessions ended and grants revoked."""
    found = _changeable_user(remit, user_id)
    if found.id == remit.user_id:
        raise AdminError("you cannot freeze yourself")
    ended, revoked = service.freeze_user(found.username, actor=remit.actor)
    audit(remit, "user.freeze", user_id=found.id, origin=origin, sessions_ended=ended,
          grants_revoked=revoked)
    db.session.commit()
    return ended, revoked


# Apps.


def visible_clients(remit: Remit, q: str = "") -> list[Client]:
    query = select(Client).order_by(Client.name, Client.client_id)
    if not remit.reads_everything:
        query = query.where(Client.client_id.in_(list(remit.apps)))
    needle = q.strip().lower()[:128]
    rows = list(db.session.scalars(query))
    if needle:
        rows = [c for c in rows if needle in c.name.lower() or needle in c.client_id.lower()
                or needle in (c.name_zh or "").lower()]
    return rows


def client(remit: Remit, client_id: str) -> Client:
    found = clients.get(client_id[:64])
    if found is None or not remit.may_read_app(found.client_id):
        raise OutOfRemit()
    return found


def _changeable_client(remit: Remit, client_id: str) -> Client:
    found = client(remit, client_id)
    if not remit.may_change_app(found.client_id):
        raise ReadOnly()
    return found


def register_client(remit: Remit, settings: dict[str, Any],
                    origin: Origin | None = None) -> tuple[Client, str | None]:
    """Register an app with the CLI's settings and validation; the secret is returned once."""
    if not remit.super_admin:
        raise ReadOnly()
    created, secret = service.create_client(**settings)
    audit(remit, "client.create", client_id=created.client_id, origin=origin,
          name=created.name, public=created.is_public)
    db.session.commit()
    return created, secret


def update_client(remit: Remit, client_id: str, *, activation: str | None,
                  events_endpoint: str | None, name_zh: str | None, logo_uri: str | None,
                  mfa_required: bool, number_matching: bool,
                  lifetimes: dict[str, Any] | None = None,
                  origin: Origin | None = None) -> Client:
    found = _changeable_client(remit, client_id)
    service.update_client(found.client_id, activation=activation,
                          events_endpoint=events_endpoint, name_zh=name_zh, logo_uri=logo_uri,
                          lifetimes=lifetimes)
    service.set_client_mfa(found.client_id, required=mfa_required, remember_device=None)
    service.set_number_matching(found.client_id, number_matching)
    audit(remit, "client.update", client_id=found.client_id, origin=origin,
          activation=activation, events_endpoint=events_endpoint, mfa_required=mfa_required,
          number_matching=number_matching, name_zh=name_zh, logo_uri=logo_uri,
          **{name: getattr(found, name) for name in clients.LIFETIMES})
    db.session.commit()
    return found


def rotate_secret(remit: Remit, client_id: str, overlap_hours: int,
                  origin: Origin | None = None) -> str:
    """A new secret, shown once; the old one keeps working for ``overlap_hours`` (0: not at
    all) while the app deploys the new one."""
    found = _changeable_client(remit, client_id)
    if found.is_public:
        raise AdminError("a public client has no secret")
    if not 0 <= overlap_hours <= 24 * 30:
        raise AdminError("overlap: 0 to 720 hours")
    secret = new_token(clients.SECRET_PREFIX)
    if overlap_hours:
        found.previous_secret_hash = found.secret_hash
        found.previous_secret_expires_at = utcnow() + timedelta(hours=overlap_hours)
    else:
        found.previous_secret_hash = found.previous_secret_expires_at = None
    found.secret_hash = hash_token(secret)
    audit(remit, "client.rotate_secret", client_id=found.client_id, origin=origin,
          overlap_hours=overlap_hours)
    db.session.commit()
    return secret


def set_client_enabled(remit: Remit, client_id: str, enabled: bool,
                       origin: Origin | None = None) -> None:
    found = _changeable_client(remit, client_id)
    found.disabled_at = None if enabled else (found.disabled_at or utcnow())
    audit(remit, "client.enable" if enabled else "client.disable", client_id=found.client_id,
          origin=origin)
    db.session.commit()


def delete_client(remit: Remit, client_id: str, typed: str,
                  origin: Origin | None = None) -> None:
    """Delete only when the admin typed the client_id (a typed confirmation)."""
    if not remit.super_admin:
        client(remit, client_id)
        raise ReadOnly()
    found = client(remit, client_id)
    if typed.strip() != found.client_id:
        raise AdminError("type the app's client_id to delete it")
    service.delete_client(found.client_id)
    audit(remit, "client.delete", client_id=None, origin=origin, deleted=found.client_id,
          name=found.name)
    db.session.commit()


# The activation queue.


def queue(remit: Remit, limit: int = 500) -> tuple[list[User], list[AppAccount]]:
    """Self-registrations (super admin and auditors) and per-app requests in the remit."""
    registrations = (list(db.session.scalars(
        select(User).where(User.status == UserStatus.PENDING).order_by(User.created_at)
        .limit(limit))) if remit.reads_everything else [])
    query = (select(AppAccount).where(AppAccount.status == AppAccountStatus.PENDING)
             .order_by(AppAccount.requested_at, AppAccount.id).limit(limit))
    if not remit.reads_everything:
        query = query.where(AppAccount.client_id.in_(list(remit.apps)))
    return registrations, list(db.session.scalars(query))


def decide(remit: Remit, items: list[str], decision: str,
           origin: Origin | None = None) -> tuple[int, list[str]]:
    """Approve or deny queue items: ``reg:<user_id>`` (a self-registration) or
    ``app:<client_id>:<user_id>`` (access to an app). The app hears of each as today."""
    if not (remit.super_admin or remit.apps):
        raise ReadOnly()
    if decision not in ("approve", "deny"):
        raise AdminError("decision: approve or deny")
    done, refused = 0, []
    for item in items[:500]:
        kind, _, rest = item.partition(":")
        try:
            if kind == "reg":
                _must_change_users(remit)
                found = user(remit, int(rest))
                (service.approve_registration if decision == "approve"
                 else service.deny_registration)(found.username, actor=remit.actor)
                audit(remit, f"registration.{decision}", user_id=found.id, origin=origin)
            elif kind == "app":
                client_id, _, raw_id = rest.rpartition(":")
                if not remit.may_change_app(client_id):
                    raise OutOfRemit()
                found = user(remit, int(raw_id))
                service.decide_app_access(decision, client_id, found.username,
                                          actor=remit.actor)
                audit(remit, f"app_access.{decision}", user_id=found.id, client_id=client_id,
                      origin=origin)
            else:
                raise OutOfRemit()
            db.session.commit()
            done += 1
        except (AdminError, OutOfRemit, ReadOnly, ValueError) as error:
            db.session.rollback()
            refused.append(f"{item}: {error or 'not found'}")
    return done, refused


# Keys.


def rotate_keys(remit: Remit, origin: Origin | None = None) -> None:
    if not remit.super_admin:
        raise ReadOnly()
    service.rotate_keys([], actor=remit.actor)
    audit(remit, "keys.rotate", origin=origin)
    db.session.commit()


def pending_accounts_of(client_id: str) -> list[AppAccount]:
    return apps.list_accounts(client_id, AppAccountStatus.PENDING)
