"""``sso users invite|resend-invite|approve|deny|disable|enable|unlock|pending``."""

from __future__ import annotations

from typing import Any

import click
from flask.cli import with_appcontext

ACTOR = "cli"


def _commit() -> None:
    from ..extensions import db  # noqa: PLC0415

    db.session.commit()


def _user(login: str) -> Any:
    from .lifecycle import find_for_code  # noqa: PLC0415

    user = find_for_code(login)
    if user is None:
        raise click.ClickException(f"no user {login!r}")
    return user


def _run(action: Any, *args: Any, **kwargs: Any) -> Any:
    from .service import AccountError  # noqa: PLC0415

    try:
        return action(*args, **kwargs)
    except AccountError as error:
        raise click.ClickException(str(error)) from None


def register(cli: click.Group) -> None:
    users = cli.commands["users"]
    assert isinstance(users, click.Group)  # noqa: S101

    @users.command("invite")
    @click.option("--username", required=True)
    @click.option("--email")
    @click.option("--phone", help="Mobile number; gets an SMS code when there is no email.")
    @click.option("--name")
    @click.option("--admin", is_flag=True, help="Give the user the admin role of the provider.")
    @click.option("--sms", is_flag=True, help="Send an SMS code even if there is an email.")
    @click.option("--locale", type=click.Choice(["zh-CN", "en"]),
                  help="Language of the messages (default: SSO_DEFAULT_LANGUAGE).")
    @with_appcontext
    def users_invite(username: str, email: str | None, phone: str | None, name: str | None,
                     admin: bool, sms: bool, locale: str | None) -> None:
        """Create an invited user and send the activation link (email) or code (SMS)."""
        from . import lifecycle  # noqa: PLC0415

        user, channel = _run(lifecycle.invite, username, email=email, phone=phone, name=name,
                             is_admin=admin, channel="sms" if sms else None, locale=locale,
                             actor=ACTOR)
        _commit()
        click.echo(f"invited {user.username} (sub {user.subject}); activation sent by {channel}")

    @users.command("resend-invite")
    @click.argument("login")
    @click.option("--sms", is_flag=True, help="Send an SMS code instead of an email link.")
    @with_appcontext
    def users_resend_invite(login: str, sms: bool) -> None:
        """Send a new activation link or code; earlier ones stop working."""
        from . import lifecycle  # noqa: PLC0415

        channel = _run(lifecycle.send_invitation, _user(login), channel="sms" if sms else None,
                       actor=ACTOR)
        _commit()
        click.echo(f"activation sent again by {channel}; earlier links and codes are void")

    @users.command("pending")
    @with_appcontext
    def users_pending() -> None:
        """List self-registered users waiting for approval."""
        from sqlalchemy import select  # noqa: PLC0415

        from ..extensions import db  # noqa: PLC0415
        from ..users.models import User, UserStatus  # noqa: PLC0415

        for user in db.session.scalars(select(User).where(User.status == UserStatus.PENDING)
                                       .order_by(User.created_at)):
            click.echo(f"{user.username:24} {user.email or '-':32} "
                       f"{user.created_at:%Y-%m-%d %H:%M} UTC")

    @users.command("approve")
    @click.argument("login")
    @with_appcontext
    def users_approve(login: str) -> None:
        """Activate a self-registered user waiting for approval (they are told by email)."""
        from . import lifecycle  # noqa: PLC0415

        _run(lifecycle.approve, _user(login), actor=ACTOR)
        _commit()
        click.echo(f"{login} approved")

    @users.command("deny")
    @click.argument("login")
    @with_appcontext
    def users_deny(login: str) -> None:
        """Refuse a self-registration waiting for approval (the account is removed)."""
        from . import lifecycle  # noqa: PLC0415

        _run(lifecycle.deny, _user(login), actor=ACTOR)
        _commit()
        click.echo(f"{login} denied and removed")

    @users.command("disable")
    @click.argument("login")
    @with_appcontext
    def users_disable(login: str) -> None:
        """Stop a user from signing in; their SSO sessions end now."""
        from . import lifecycle  # noqa: PLC0415

        ended = _run(lifecycle.disable, _user(login), actor=ACTOR)
        _commit()
        click.echo(f"{login} disabled; {ended} session(s) ended")

    @users.command("enable")
    @click.argument("login")
    @with_appcontext
    def users_enable(login: str) -> None:
        """Let a disabled user sign in again."""
        from . import lifecycle  # noqa: PLC0415

        _run(lifecycle.enable, _user(login), actor=ACTOR)
        _commit()
        click.echo(f"{login} enabled")

    @users.command("unlock")
    @click.argument("login")
    @with_appcontext
    def users_unlock(login: str) -> None:
        """Lift a lock after too many failed sign-ins (and forget the failures)."""
        from . import lifecycle  # noqa: PLC0415

        lifecycle.unlock(_user(login), actor=ACTOR)
        _commit()
        click.echo(f"{login} unlocked")
