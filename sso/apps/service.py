"""Activate users in each app (DESIGN.md §3 step 4): policies, admin decisions, events.

Each app (client) has an activation policy (``Client.activation``):

* ``auto`` (default): the first sign-in activates the user's account in the app;
* ``approval``: the first sign-in files a request; an admin approves or denies it;
* ``invite``: only users an admin provisioned for the app get in.

A refused or revoked account stays closed whatever the policy, until an admin approves or
provisions it again. Every change is audited and, when the app registered an events
endpoint, sent to it as a Security Event Token. No Flask request in here: views pass
``origin``; services flush, callers commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from .. import audit, driversql, notify
from ..audit import Origin
from ..dbtypes import utcnow
from ..extensions import db
from ..oidc.public import Client, revoke_grants, update_policy
from ..outbox import OutboxMessage
from ..users.models import User
from . import events
from .models import AppAccount
from .models import AppAccountStatus as Status

AUTO, APPROVAL, INVITE = "auto", "approval", "invite"
POLICIES = (AUTO, APPROVAL, INVITE)
DEFAULT_POLICY = AUTO

#: What the sign-in flow should do for this user and app.
PASS, WAIT, REFUSE = "pass", "wait", "refuse"


class AppsError(ValueError):
    """A request about app accounts that cannot be carried out; the message is for the admin."""


@dataclass
class Decision:
    outcome: str
    #: Why a sign-in is refused: "refused", "revoked" or "not_provisioned".
    reason: str = ""
    #: What the decision causes (an account activated, a request filed, a refusal audited),
    #: run by the caller once, after deciding; returns the events it queued.
    effect: Callable[[], list[OutboxMessage | None]] | None = None
    #: Events queued by the effect (``on_sign_in`` runs it).
    events: list[OutboxMessage | None] = field(default_factory=list)


def policy_of(client: Client) -> str:
    return client.activation or DEFAULT_POLICY


def check_activation(activation: str) -> str:
    if activation not in POLICIES:
        raise AppsError(f"activation must be one of {', '.join(POLICIES)}")
    return activation


def check_events_endpoint(events_endpoint: str) -> str | None:
    """A valid events endpoint, or None for an empty value (no events)."""
    if not events_endpoint.strip():
        return None
    try:
        return events.check_endpoint(events_endpoint)
    except events.EndpointError as error:
        raise AppsError(str(error)) from None


def checked_policy(policy: dict[str, Any]) -> dict[str, Any]:
    """``policy`` (client policy columns) with its activation policy and events endpoint
    validated (an empty events endpoint becomes None: no events)."""
    checked = dict(policy)
    if checked.get("activation") is not None:
        checked["activation"] = check_activation(checked["activation"])
    if "events_endpoint" in checked:
        checked["events_endpoint"] = check_events_endpoint(checked["events_endpoint"] or "")
    return checked


def configure(client: Client, *, activation: str | None = None,
              events_endpoint: str | None = None, origin: Origin | None = None) -> None:
    """Set the app's activation policy and/or events endpoint (an empty endpoint removes it)."""
    changes: dict[str, Any] = {}
    if activation is not None:
        changes["activation"] = check_activation(activation)
    if events_endpoint is not None:
        changes["events_endpoint"] = check_events_endpoint(events_endpoint)
    update_policy(client, origin=origin, **changes)


def find(user_id: int, client_id: str) -> AppAccount | None:
    return db.session.scalar(
        select(AppAccount).where(AppAccount.user_id == user_id,
                                 AppAccount.client_id == client_id)
    )


def status_read(user_id: Any, client_id: Any) -> tuple[Any]:
    """The status of the user's account in the app as a column (``user_id`` and
    ``client_id`` SQL expressions; NULL: no account yet): the step table's ``reads`` of
    ``activation``."""
    return (select(AppAccount.status).where(AppAccount.user_id == user_id,
                                            AppAccount.client_id == client_id)
            .scalar_subquery(),)


_STATUS = select(status_read(bindparam("status_user"), bindparam("status_client"))[0]
                 .label("status"))


def status_of(user_id: int, client_id: str) -> str | None:
    """The status of the user's account in the app (None: no account yet), read alone."""
    found = driversql.one_statement(_STATUS,  # an account changed earlier in the request counts
                                   {"status_user": user_id, "status_client": client_id})
    return found[0].status  # type: ignore[no-any-return]


def list_accounts(client_id: str | None = None, status: str | None = None
                  ) -> list[AppAccount]:
    query = select(AppAccount).order_by(AppAccount.client_id, AppAccount.id)
    if client_id is not None:
        query = query.where(AppAccount.client_id == client_id)
    if status is not None:
        query = query.where(AppAccount.status == status)
    return list(db.session.scalars(query))


def _find_or_create(user: User, client: Client, status: str, now: datetime
                    ) -> tuple[AppAccount, bool]:
    """The user's account in the app, and whether it was created (with ``status``) now.

    Two tabs signing in at once both try to insert: the unique constraint lets one win and
    the other reads the winner's row, so nobody sees an error and one event is sent.
    """
    account = find(user.id, client.client_id)
    if account is not None:
        return account, False
    try:
        with db.session.begin_nested():
            account = AppAccount(user_id=user.id, client_id=client.client_id, status=status,
                                 created_at=now)
            db.session.add(account)
    except IntegrityError:
        account = find(user.id, client.client_id)
        if account is None:
            raise
        return account, False
    return account, True


def _claim(account: AppAccount, now: datetime) -> bool:
    """Move the account to active atomically: of two racing sign-ins, one activates."""
    won = db.session.execute(
        update(AppAccount)
        .where(AppAccount.id == account.id, AppAccount.status == account.status)
        .values(status=Status.ACTIVE, activated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(account)
    return bool(won)


def _activate(account: AppAccount, user: User, client: Client, *, via: str, now: datetime,
              origin: Origin | None, actor: str | None = None) -> OutboxMessage | None:
    account.status = Status.ACTIVE
    account.activated_at = now
    audit.record("app.activate", origin=origin, user_id=user.id, client_id=client.client_id,
                 via=via, actor=actor)
    return events.enqueue(client, user, events.ACTIVATED, {
        "status": Status.ACTIVE, "via": via, "activated_at": int(now.timestamp()),
    }, now)


def decide_sign_in(user: User, client: Client, *, interactive: bool, origin: Origin | None,
                   now: datetime | None = None) -> Decision:
    """Decide whether ``user``, signed in, may go on to ``client``, without changing anything;
    the decision's ``effect`` records what follows from it.

    ``interactive`` is False for ``prompt=none``: then no approval request is filed (the
    user never saw a page that said so), but an ``auto`` activation, which shows none, is.
    """
    now = now or utcnow()
    account = find(user.id, client.client_id)
    policy = policy_of(client)
    if account is None:
        if policy == AUTO:
            return Decision(PASS, effect=lambda: _activate_new(user, client, now, origin))
        if policy == APPROVAL:
            if not interactive:
                return Decision(WAIT)
            return Decision(WAIT, effect=lambda: _file_request(user, client, now, origin))
        # invite, or a policy this version does not know: closed unless provisioned.
        return Decision(REFUSE, "not_provisioned",
                        effect=lambda: _refusal(user, client, "not_provisioned", origin))
    if account.status == Status.ACTIVE:
        return Decision(PASS)
    if account.status == Status.PENDING and policy != AUTO:
        return Decision(WAIT)
    if account.status in (Status.PROVISIONED, Status.PENDING):
        # Provisioned by an admin, or waiting for an app that has since opened to everyone.
        via = "provisioned" if account.status == Status.PROVISIONED else AUTO
        return Decision(PASS, effect=lambda: _activate_claimed(account, user, client, via,
                                                               now, origin))
    reason = account.status
    return Decision(REFUSE, reason, effect=lambda: _refusal(user, client, reason, origin))


def on_sign_in(user: User, client: Client, *, interactive: bool, origin: Origin | None,
               now: datetime | None = None) -> Decision:
    """Decide, and record what the decision causes (the sign-in flow does the two apart)."""
    decision = decide_sign_in(user, client, interactive=interactive, origin=origin, now=now)
    if decision.effect is not None:
        decision.events = decision.effect()
    return decision


def _activate_new(user: User, client: Client, now: datetime, origin: Origin | None
                  ) -> list[OutboxMessage | None]:
    account, created = _find_or_create(user, client, Status.ACTIVE, now)
    if not created:
        return []  # another tab activated it just now
    return [_activate(account, user, client, via=AUTO, now=now, origin=origin)]


def _file_request(user: User, client: Client, now: datetime, origin: Origin | None
                  ) -> list[OutboxMessage | None]:
    account, created = _find_or_create(user, client, Status.PENDING, now)
    if created:
        account.requested_at = now
        audit.record("app.request", origin=origin, user_id=user.id,
                     client_id=client.client_id)
        _tell_admins(user, client)
    return []


def _activate_claimed(account: AppAccount, user: User, client: Client, via: str,
                      now: datetime, origin: Origin | None) -> list[OutboxMessage | None]:
    if not _claim(account, now):
        return []  # another tab activated it just now
    return [_activate(account, user, client, via=via, now=now, origin=origin)]


def _refusal(user: User, client: Client, reason: str, origin: Origin | None
             ) -> list[OutboxMessage | None]:
    audit.record("app.refuse", audit.FAILURE, origin=origin, user_id=user.id,
                 client_id=client.client_id, reason=reason)
    return []


# Admin decisions (CLI now; the admin console will call the same functions).


def provision(user: User, client: Client, *, actor: str,
              origin: Origin | None = None) -> AppAccount:
    """Let ``user`` into an ``invite`` app; the first sign-in activates the account."""
    now = utcnow()
    account, _created = _find_or_create(user, client, Status.PROVISIONED, now)
    if account.status == Status.ACTIVE:
        raise AppsError(f"{user.username} is already active in {client.client_id}")
    account.status = Status.PROVISIONED
    account.decided_at, account.decided_by = now, actor
    audit.record("app.provision", origin=origin, user_id=user.id, client_id=client.client_id,
                 actor=actor)
    return account


def approve(user: User, client: Client, *, actor: str, origin: Origin | None = None
            ) -> tuple[AppAccount, OutboxMessage | None]:
    """Activate the account now (a pending request, or a refused/revoked one reopened)."""
    now = utcnow()
    account, _created = _find_or_create(user, client, Status.PENDING, now)
    if account.status == Status.ACTIVE:
        raise AppsError(f"{user.username} is already active in {client.client_id}")
    account.decided_at, account.decided_by = now, actor
    message = _activate(account, user, client, via=APPROVAL, now=now, origin=origin,
                        actor=actor)
    _tell_user(user, client, "app_access_granted")
    return account, message


def deny(user: User, client: Client, *, actor: str, origin: Origin | None = None
         ) -> tuple[AppAccount, OutboxMessage | None]:
    """Refuse the user's request for this app; the user is told by email."""
    now = utcnow()
    account, _created = _find_or_create(user, client, Status.REFUSED, now)
    if account.status == Status.ACTIVE:
        raise AppsError(f"{user.username} is active in {client.client_id}; use revoke")
    account.status = Status.REFUSED
    account.decided_at, account.decided_by = now, actor
    audit.record("app.deny", origin=origin, user_id=user.id, client_id=client.client_id,
                 actor=actor)
    _tell_user(user, client, "app_access_refused")
    message = events.enqueue(client, user, events.REFUSED, {"status": Status.REFUSED}, now)
    return account, message


def revoke(user: User, client: Client, *, actor: str, origin: Origin | None = None
           ) -> tuple[AppAccount, OutboxMessage | None]:
    """Close the account and revoke the app's refresh tokens (and their access tokens)."""
    now = utcnow()
    account = find(user.id, client.client_id)
    if account is None or account.status in (Status.REVOKED, Status.REFUSED):
        raise AppsError(f"{user.username} has no open account in {client.client_id}")
    account.status = Status.REVOKED
    account.decided_at, account.decided_by = now, actor
    grants = revoke_grants(user.id, client_id=client.client_id, reason="app_account_revoked",
                           origin=origin)
    audit.record("app.revoke", origin=origin, user_id=user.id, client_id=client.client_id,
                 actor=actor, grants=grants)
    message = events.enqueue(client, user, events.REVOKED, {"status": Status.REVOKED}, now)
    return account, message


def _tell_user(user: User, client: Client, template: str) -> None:
    if user.email:
        # An admin's command has no browser language: the user's own, else the default.
        locale = user.locale or current_app.config["DEFAULT_LANGUAGE"]
        notify.mail(user.email, template, locale=locale, user_id=user.id,
                    app=client.display_name(locale), username=user.username)


def _tell_admins(user: User, client: Client) -> None:
    """Let the provider's admins know a request waits, with the command that decides it."""
    admins = db.session.scalars(
        select(User).where(User.is_admin.is_(True), User.email.is_not(None),
                           User.status == "active")
    ).all()
    for admin in admins:
        locale = admin.locale or current_app.config["DEFAULT_LANGUAGE"]
        notify.mail(admin.email, "app_access_requested", locale=locale, user_id=admin.id,
                    app=client.display_name(locale), client_id=client.client_id,
                    username=user.username,
                    admin=admin.username)
