"""``sso apps``: the admin side of per-app activation (list, provision, approve, deny, revoke)."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import Any

import click
from flask.cli import with_appcontext

STATUSES = ["provisioned", "pending", "active", "refused", "revoked"]


def _actor() -> str:
    """Who decided, for the record: the operating-system account that ran the command."""
    try:
        return f"cli:{getpass.getuser()}"[:128]
    except (KeyError, OSError):
        return "cli"


def _load(client_id: str, login: str) -> tuple[Any, Any]:
    from ..oidc.public import get  # noqa: PLC0415
    from ..users.service import find_by_login  # noqa: PLC0415

    client = get(client_id)
    if client is None:
        raise click.ClickException(f"no client {client_id!r}")
    user = find_by_login(login)
    if user is None:
        raise click.ClickException(f"no user {login!r}")
    return client, user


def _decide(action: Callable[..., Any], client_id: str, login: str, done: str) -> None:
    from ..extensions import db  # noqa: PLC0415
    from . import events  # noqa: PLC0415
    from .service import AppsError  # noqa: PLC0415

    client, user = _load(client_id, login)
    try:
        result = action(user, client, actor=_actor())
    except AppsError as error:
        raise click.ClickException(str(error)) from None
    db.session.commit()
    message = result[1] if isinstance(result, tuple) else None
    events.deliver_now([message])
    click.echo(f"{user.username} {done} {client.client_id}")


def register(cli: click.Group) -> None:
    @cli.group("apps")
    def apps_group() -> None:
        """Activation of users in each app (policies: auto, approval, invite)."""

    @apps_group.command("list")
    @click.argument("client_id", required=False)
    @click.option("--status", type=click.Choice(STATUSES),
                  help="Only accounts in this state (e.g. pending: requests to decide).")
    @with_appcontext
    def apps_list(client_id: str | None, status: str | None) -> None:
        """List app accounts (of CLIENT_ID only, if given)."""
        from .service import list_accounts  # noqa: PLC0415

        def when(value: Any) -> str:
            return value.strftime("%Y-%m-%d %H:%M") if value else "-"

        for account in list_accounts(client_id, status):
            click.echo(f"{account.client_id:24} {account.user.username:24} {account.status:12} "
                       f"requested {when(account.requested_at):16} "
                       f"activated {when(account.activated_at):16} "
                       f"decided {when(account.decided_at)} {account.decided_by or ''}".rstrip())

    @apps_group.command("provision")
    @click.argument("client_id")
    @click.argument("login")
    @with_appcontext
    def apps_provision(client_id: str, login: str) -> None:
        """Let user LOGIN into app CLIENT_ID (for `invite` apps); activated at first sign-in."""
        from .service import provision  # noqa: PLC0415

        _decide(provision, client_id, login, "is provisioned for")

    @apps_group.command("approve")
    @click.argument("client_id")
    @click.argument("login")
    @with_appcontext
    def apps_approve(client_id: str, login: str) -> None:
        """Approve user LOGIN's access to app CLIENT_ID (the user is told by email)."""
        from .service import approve  # noqa: PLC0415

        _decide(approve, client_id, login, "is approved for")

    @apps_group.command("deny")
    @click.argument("client_id")
    @click.argument("login")
    @with_appcontext
    def apps_deny(client_id: str, login: str) -> None:
        """Refuse user LOGIN's request for app CLIENT_ID (the user is told by email)."""
        from .service import deny  # noqa: PLC0415

        _decide(deny, client_id, login, "is refused access to")

    @apps_group.command("revoke")
    @click.argument("client_id")
    @click.argument("login")
    @with_appcontext
    def apps_revoke(client_id: str, login: str) -> None:
        """Close user LOGIN's account in app CLIENT_ID and revoke the app's tokens for them."""
        from .service import revoke  # noqa: PLC0415

        _decide(revoke, client_id, login, "is revoked from")

    @apps_group.command("events")
    @click.argument("client_id", required=False)
    @click.option("--status", type=click.Choice(["pending", "sent", "dead"]),
                  help="Only events in this state (dead: given up after retries or refused).")
    @with_appcontext
    def apps_events(client_id: str | None, status: str | None) -> None:
        """List the security events sent to apps (newest first)."""
        from .events import list_messages  # noqa: PLC0415

        for message in list_messages(client_id, status):
            click.echo(f"{message.id:6} {message.payload.get('client_id', '-'):24} "
                       f"{message.purpose:16} {message.status:8} tries {message.attempts:2} "
                       f"{message.created_at:%Y-%m-%d %H:%M} {message.last_error or ''}".rstrip())

    @apps_group.command("redeliver")
    @click.argument("message_id", type=int)
    @with_appcontext
    def apps_redeliver(message_id: int) -> None:
        """Send event MESSAGE_ID again (after the app's endpoint was fixed)."""
        from ..extensions import db  # noqa: PLC0415
        from . import events  # noqa: PLC0415

        try:
            message = events.redeliver(message_id)
        except events.EventError as error:
            raise click.ClickException(str(error)) from None
        db.session.commit()
        events.deliver_now([message])
        db.session.refresh(message)
        click.echo(f"event {message_id}: {message.status}"
                   + (f" ({message.last_error})" if message.last_error else ""))
