"""``sso admins list|grant|revoke``: the console's admin remits from the command line (a super
admin is made with ``sso users create --admin``)."""

from __future__ import annotations

import click

from ..cli import with_app
from .cli import AdminGroup


@click.group("admins", cls=AdminGroup)
def admins_group() -> None:
    """App admins and auditors of the admin console."""


def _change(login: str, app_admin: str | None, auditor: bool, grant: bool) -> str:
    from ..extensions import db  # noqa: PLC0415
    from . import AdminError, remit, service  # noqa: PLC0415
    from .models import APP_ADMIN, AUDITOR  # noqa: PLC0415

    if bool(app_admin) == auditor:
        raise AdminError("give either --app-admin CLIENT_ID or --auditor")
    user = service.find_user(login)
    if app_admin:
        service.find_client(app_admin)
    role = APP_ADMIN if app_admin else AUDITOR
    if grant:
        remit.grant(user, role, app_admin, actor="cli")
    else:
        remit.revoke(user, role, app_admin)
    from ..audit import record  # noqa: PLC0415

    record("admin.admin_grant", user_id=user.id, client_id=app_admin, actor="cli",
           change={"role": role, "granted": grant})
    db.session.commit()
    return f"{user.username}: {role}" + (f" of {app_admin}" if app_admin else "")


@admins_group.command("grant")
@click.argument("login")
@click.option("--app-admin", "app_admin", metavar="CLIENT_ID", help="Admin of this app.")
@click.option("--auditor", is_flag=True, help="Read-only, everything.")
@with_app
def admins_grant(login: str, app_admin: str | None, auditor: bool) -> None:
    """Make user LOGIN an app admin of CLIENT_ID, or an auditor."""
    click.echo(_change(login, app_admin, auditor, True) + " granted")


@admins_group.command("revoke")
@click.argument("login")
@click.option("--app-admin", "app_admin", metavar="CLIENT_ID")
@click.option("--auditor", is_flag=True)
@with_app
def admins_revoke(login: str, app_admin: str | None, auditor: bool) -> None:
    """Take an app admin's or an auditor's remit back."""
    click.echo(_change(login, app_admin, auditor, False) + " revoked")


@admins_group.command("list")
@with_app
def admins_list() -> None:
    """Super admins, app admins and auditors."""
    from sqlalchemy import select  # noqa: PLC0415

    from ..extensions import db  # noqa: PLC0415
    from ..users.models import User  # noqa: PLC0415
    from .models import AdminGrant  # noqa: PLC0415

    for user in db.session.scalars(select(User).where(User.is_admin).order_by(User.username)):
        click.echo(f"{user.username:24} super admin")
    rows = db.session.execute(select(User.username, AdminGrant.role, AdminGrant.client_id)
                              .join(AdminGrant, AdminGrant.user_id == User.id)
                              .order_by(User.username, AdminGrant.role, AdminGrant.client_id))
    for username, role, client_id in rows:
        click.echo(f"{username:24} {role}" + (f" {client_id}" if client_id else ""))
