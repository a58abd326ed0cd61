"""``sso groups list|show|create|update|delete|add|remove|grant|revoke``: groups (departments)
whose members inherit the group's roles, and those of the groups above it.

The commands call :mod:`sso.admin.groups`, the functions the console calls, as the operator
at the shell (a super admin, audited as ``cli``). Only click is imported at load time.
"""

from __future__ import annotations

from typing import Any

import click

from ..cli import with_app
from .cli import AdminGroup


def _groups() -> Any:
    from . import groups  # noqa: PLC0415 - loaded when a command runs, not for --help

    return groups


@click.group("groups", cls=AdminGroup)
def groups_group() -> None:
    """Groups (departments): members inherit the group's roles and its parents'."""


@groups_group.command("list")
@with_app
def groups_list() -> None:
    """Every group with its parent and member count."""
    for group, count in _groups().listing(None):
        parent = f"  part of {group.parent.name}" if group.parent else ""
        click.echo(f"{group.name:24} {count} member(s){parent}  {group.display_name}")


@groups_group.command("show")
@click.argument("name")
@with_app
def groups_show(name: str) -> None:
    """A group's place in the tree, roles and members."""
    service = _groups()
    group = service.group(None, name)
    above = " > ".join(g.name for g in reversed(service.store.ancestors(group)))
    click.echo(f"{group.name}: {group.display_name}")
    click.echo(f"part of: {above or '-'}")
    roles = ", ".join(f"{app}:{role}" for app, role in service.roles_visible(None, group))
    click.echo(f"roles: {roles or '-'}")
    members, _total = service.members_visible(None, group)
    click.echo(f"members: {', '.join(u.username for u in members) or '-'}")


@groups_group.command("create")
@click.argument("name")
@click.option("--display-name", help="The name people read (default: NAME).")
@click.option("--description")
@click.option("--parent", metavar="GROUP", help="The group this one is part of.")
@with_app
def groups_create(name: str, display_name: str | None, description: str | None,
                  parent: str | None) -> None:
    """Create group NAME (lower-case letters, digits, '.', '_', '-')."""
    created = _groups().create(None, name=name, display_name=display_name,
                               description=description, parent=parent)
    click.echo(f"group {created.name} created")


@groups_group.command("update")
@click.argument("name")
@click.option("--rename", metavar="NEW_NAME")
@click.option("--display-name")
@click.option("--description")
@click.option("--parent", metavar="GROUP", help="Move under GROUP ('' for the top level).")
@with_app
def groups_update(name: str, rename: str | None, display_name: str | None,
                  description: str | None, parent: str | None) -> None:
    """Rename, describe or move group NAME (a move that would make a cycle is refused)."""
    group = _groups().update(None, name, name=rename, display_name=display_name,
                             description=description, parent=parent)
    click.echo(f"group {group.name} updated")


@groups_group.command("delete")
@click.argument("name")
@click.option("--detach-members", is_flag=True,
              help="Delete it even with members (they lose the roles it gave them).")
@with_app
def groups_delete(name: str, detach_members: bool) -> None:
    """Delete group NAME (refused while it has subgroups, or members without the flag)."""
    detached = _groups().delete(None, name, detach_members=detach_members)
    click.echo(f"group {name} deleted" + (f", {detached} member(s) detached" if detached
                                          else ""))


@groups_group.command("add")
@click.argument("name")
@click.argument("logins", nargs=-1, required=True)
@with_app
def groups_add(name: str, logins: tuple[str, ...]) -> None:
    """Add users (LOGINS: usernames or emails) to group NAME."""
    for login in logins:
        changed = _groups().change_member(None, name, login, True)
        click.echo(f"{login} {'added to' if changed else 'already in'} {name}")


@groups_group.command("remove")
@click.argument("name")
@click.argument("logins", nargs=-1, required=True)
@with_app
def groups_remove(name: str, logins: tuple[str, ...]) -> None:
    """Take users out of group NAME."""
    for login in logins:
        changed = _groups().change_member(None, name, login, False)
        click.echo(f"{login} {'removed from' if changed else 'was not in'} {name}")


@groups_group.command("grant")
@click.argument("name")
@click.argument("client_id")
@click.argument("role")
@with_app
def groups_grant(name: str, client_id: str, role: str) -> None:
    """Give group NAME (and so its members and subgroups' members) ROLE in app CLIENT_ID."""
    _groups().change_role(None, name, client_id, role, True)
    click.echo(f"group {name} has role {role} in {client_id}")


@groups_group.command("revoke")
@click.argument("name")
@click.argument("client_id")
@click.argument("role")
@with_app
def groups_revoke(name: str, client_id: str, role: str) -> None:
    """Take ROLE in app CLIENT_ID away from group NAME."""
    _groups().change_role(None, name, client_id, role, False)
    click.echo(f"group {name} no longer has role {role} in {client_id}")
