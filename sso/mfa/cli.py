"""Admin commands for two-step verification, added to the ``sso`` command groups."""

from __future__ import annotations

import json
from typing import Any

import click
from flask.cli import with_appcontext


def _fail(message: str) -> None:
    raise click.ClickException(message)


def _user(login: str) -> Any:
    from ..users.service import find_by_login  # noqa: PLC0415

    user = find_by_login(login)
    if user is None:
        _fail(f"no user {login!r}")
    return user


def _commit() -> None:
    from ..extensions import db  # noqa: PLC0415

    db.session.commit()


@click.command("require-mfa")
@click.argument("login")
@click.option("--off", is_flag=True, help="Stop requiring it (the user may keep MFA on).")
@with_appcontext
def users_require_mfa(login: str, off: bool) -> None:
    """Require two-step verification of user LOGIN at every sign-in."""
    from . import policy  # noqa: PLC0415

    user = _user(login)
    policy.require_for_user(user, not off)
    _commit()
    click.echo(f"{user.username}: two-step verification {'not ' if off else ''}required")


@click.command("reset-mfa")
@click.argument("login")
@click.option("--keep-sessions", is_flag=True,
              help="Leave the user's SSO sessions open (by default they are ended).")
@with_appcontext
def users_reset_mfa(login: str, keep_sessions: bool) -> None:
    """Remove user LOGIN's authenticator, recovery codes and remembered devices (lost phone).

    The user's SSO sessions end too, unless --keep-sessions: whoever holds the lost phone may
    hold a signed-in session on it. If MFA is still required of the user, they set up a new
    authenticator at their next sign-in.
    """
    from ..sessions import service as sessions  # noqa: PLC0415
    from . import service  # noqa: PLC0415

    user = _user(login)
    had = service.remove(user, origin=None, event="mfa.reset")
    ended = 0 if keep_sessions else sessions.end_user_sessions(user.id, reason="mfa.reset")
    _commit()
    click.echo(f"{user.username}: two-step verification reset"
               + ("" if had else " (no authenticator was set up)")
               + (f"; {ended} session(s) ended" if ended else ""))


@click.command("require-mfa")
@click.argument("client_id")
@click.argument("role")
@click.option("--off", is_flag=True, help="Stop requiring it for this role.")
@with_appcontext
def roles_require_mfa(client_id: str, role: str, off: bool) -> None:
    """Require two-step verification of holders of ROLE when they sign in to CLIENT_ID."""
    from sqlalchemy import select  # noqa: PLC0415

    from ..extensions import db  # noqa: PLC0415
    from ..users.models import AppRole  # noqa: PLC0415
    from . import policy  # noqa: PLC0415

    found = db.session.scalar(
        select(AppRole).where(AppRole.client_id == client_id, AppRole.name == role)
    )
    if found is None:
        _fail(f"app {client_id!r} has no role {role!r}")
    policy.require_for_role(found, not off)
    _commit()
    click.echo(f"role {role} in {client_id}: two-step verification "
               f"{'not ' if off else ''}required")


@click.command("set-mfa")
@click.argument("client_id")
@click.option("--required/--not-required", default=None,
              help="Whether users need two-step verification for this app.")
@click.option("--remember-device/--no-remember-device", default=None,
              help="Whether 'remember this device' may skip the code for this app.")
@with_appcontext
def clients_set_mfa(client_id: str, required: bool | None, remember_device: bool | None
                    ) -> None:
    """Set the two-step verification policy of app CLIENT_ID."""
    from ..oidc.public import get  # noqa: PLC0415
    from . import policy  # noqa: PLC0415

    if required is None and remember_device is None:
        _fail("give --required/--not-required and/or --remember-device/--no-remember-device")
    client = get(client_id)
    if client is None:
        _fail(f"no client {client_id!r}")
    policy.set_client_policy(client, required=required, remember_device=remember_device)
    _commit()
    click.echo(json.dumps({"client_id": client_id, "mfa_required": client.mfa_required,
                           "remember_device": client.remember_device}))


@click.group("mfa")
def mfa_group() -> None:
    """Two-step verification (TOTP)."""


@mfa_group.command("rotate-key")
@with_appcontext
def rotate_key() -> None:
    """Re-encrypt every TOTP seed with the first key of SSO_MFA_ENCRYPTION_KEYS."""
    from .crypto import UndecryptableSecret  # noqa: PLC0415
    from .service import rotate_encryption  # noqa: PLC0415

    try:
        count = rotate_encryption()
    except UndecryptableSecret as error:
        _fail(f"{error}; nothing was changed")
    _commit()
    click.echo(f"re-encrypted {count} TOTP seeds with the first key")


@mfa_group.command("status")
@click.argument("login")
@with_appcontext
def status(login: str) -> None:
    """Show whether user LOGIN has two-step verification and whether it is required."""
    from . import policy  # noqa: PLC0415

    user = _user(login)
    info = policy.status(user)
    click.echo(json.dumps({
        "user": user.username, "enrolled": info["enrolled"], "required": info["required"],
        "recovery_codes_left": info["recovery_codes_left"],
    }))


def register(cli: click.Group) -> None:
    """Add the commands to ``sso users``, ``sso roles``, ``sso clients`` and ``sso mfa``."""
    groups: dict[str, Any] = cli.commands  # type: ignore[assignment]
    groups["users"].add_command(users_require_mfa)
    groups["users"].add_command(users_reset_mfa)
    groups["roles"].add_command(roles_require_mfa)
    groups["clients"].add_command(clients_set_mfa)
    cli.add_command(mfa_group)
