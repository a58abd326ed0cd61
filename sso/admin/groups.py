"""Groups (departments) as the console and ``sso groups`` change them, one function per action.

Each is checked against the admin's :class:`~sso.admin.remit.Remit` and audited as
``admin.group.<action>`` with the admin, the group and the change, then committed. The remit:
the super admin does everything; an app admin grants and takes back only its apps' roles on a
group and otherwise reads the structure (names, parents, its apps' roles, its users among the
members); an auditor reads. The command line passes ``remit=None``: the operator at the shell
is a super admin and is audited as ``cli``.

Who is in a group and what it grants are read when a token is issued
(:meth:`~sso.users.models.User.roles_in`), so a change shows in every token issued after it;
tokens already issued keep the roles they carry until they expire, as with direct grants.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..audit import Origin, record
from ..extensions import db
from ..oidc import clients
from ..users import groups as store
from ..users import service as users
from ..users.models import Group, User
from . import AdminError, users_query
from .operations import OutOfRemit, ReadOnly, audit
from .remit import Remit

CLI_ACTOR = "cli"


def _audit(remit: Remit | None, action: str, group: Group | str, *,
           user_id: int | None = None, client_id: str | None = None,
           origin: Origin | None = None, **change: Any) -> None:
    name = group if isinstance(group, str) else group.name
    if remit is None:
        record(f"admin.group.{action}", origin=origin, user_id=user_id, client_id=client_id,
               actor=CLI_ACTOR, change={"group": name, **change})
    else:
        audit(remit, f"group.{action}", user_id=user_id, client_id=client_id, origin=origin,
              group=name, **change)


def _super(remit: Remit | None) -> None:
    if remit is not None and not remit.super_admin:
        raise ReadOnly()


def _store(action: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return action(*args, **kwargs)
    except users.UserError as error:
        raise AdminError(str(error)) from None


# Reading.


def group(remit: Remit | None, ref: int | str) -> Group:
    """The group by id (the console's links) or by name (the command line); any admin may
    read the structure. Unknown or forged: :class:`OutOfRemit` (404), or for the command
    line an :class:`AdminError` naming it."""
    found: Group | None = None
    text = str(ref).strip()
    if text.isdigit() and len(text) <= 12:
        found = store.get(int(text))
    elif store.NAME_PATTERN.match(text.lower()[:64]):
        found = store.find(text)
    if found is None:
        if remit is None:
            raise AdminError(f"no group {text[:64]!r}")
        raise OutOfRemit()
    return found


def listing(remit: Remit | None) -> list[tuple[Group, int]]:
    """Every group with its member count (the structure is readable by every admin)."""
    return store.with_member_counts()


def members_visible(remit: Remit | None, found: Group) -> tuple[list[User], int]:
    """The members the admin may see (an app admin: its apps' users), and how many there
    are in all."""
    everyone = store.members(found)
    if remit is None or remit.reads_everything:
        return everyone, len(everyone)
    visible_ids = set(db.session.scalars(users_query.in_remit(remit).with_only_columns(
        User.id).where(User.id.in_([u.id for u in everyone]))))
    return [u for u in everyone if u.id in visible_ids], len(everyone)


def roles_visible(remit: Remit | None, found: Group) -> list[tuple[str, str]]:
    return [(r.client_id, r.name) for r in found.roles
            if remit is None or remit.may_read_app(r.client_id)]


def user_groups(remit: Remit | None, found: User) -> list[Group]:
    return store.groups_of(found)


def role_sources(remit: Remit | None, found: User) -> list[tuple[str, str, str | None]]:
    """The user's roles in the apps the admin may read: (app, role, group or None)."""
    return [row for row in store.role_sources(found)
            if remit is None or remit.may_read_app(row[0])]


# Changing the structure (super admin).


def _parent(ref: str | None) -> Group | None:
    if not ref or not ref.strip():
        return None
    found = store.find(ref) if not ref.strip().isdigit() else store.get(int(ref.strip()[:12]))
    if found is None:
        raise AdminError(f"no group {ref.strip()[:64]!r}")
    return found


def create(remit: Remit | None, *, name: str, display_name: str | None = None,
           description: str | None = None, parent: str | None = None,
           origin: Origin | None = None) -> Group:
    _super(remit)
    parent_group = _parent(parent)
    created = _store(store.create, name, display_name=display_name, description=description,
                     parent=parent_group)
    _audit(remit, "create", created, origin=origin, display_name=created.display_name,
           parent=parent_group.name if parent_group else None)
    db.session.commit()
    return created


def update(remit: Remit | None, ref: int | str, *, name: str | None = None,
           display_name: str | None = None, description: str | None = None,
           parent: str | None = None, origin: Origin | None = None) -> Group:
    """Rename, describe and move a group; ``parent`` "" puts it at the top, None leaves it."""
    found = group(remit, ref)
    _super(remit)
    before = found.name
    change = _store(store.update, found, name=name, display_name=display_name,
                    description=description)
    if parent is not None:
        parent_group = _parent(parent)
        old = found.parent.name if found.parent else None
        if _store(store.set_parent, found, parent_group):
            change["parent"] = {"from": old, "to": parent_group.name if parent_group else None}
    if change:
        _audit(remit, "update", before, origin=origin, **change)
    db.session.commit()
    return found


def delete(remit: Remit | None, ref: int | str, *, detach_members: bool = False,
           origin: Origin | None = None) -> int:
    """Delete a group: refused while it has subgroups, and while it has members unless
    ``detach_members`` (see :func:`sso.users.groups.delete`). Returns members detached."""
    found = group(remit, ref)
    _super(remit)
    name = found.name
    detached = _store(store.delete, found, detach_members=detach_members)
    _audit(remit, "delete", name, origin=origin, members_detached=detached)
    db.session.commit()
    return detached


def _user(remit: Remit | None, login: str) -> User:
    found = users.find_by_login(login)
    if found is None or (remit is not None and users_query.find(remit, found.id) is None):
        raise AdminError(f"no user {login.strip()[:64]!r}")
    return found


def change_member(remit: Remit | None, ref: int | str, login: str, add: bool,
                  origin: Origin | None = None) -> bool:
    """Add or remove a member (by username or email); returns whether anything changed."""
    found = group(remit, ref)
    _super(remit)
    if not login.strip():
        raise AdminError("username: required")
    member = _user(remit, login)
    changed = (store.add_member if add else store.remove_member)(found, member)
    if changed:
        _audit(remit, "member.add" if add else "member.remove", found, user_id=member.id,
               origin=origin, username=member.username)
    db.session.commit()
    return changed


def change_role(remit: Remit | None, ref: int | str, client_id: str, role: str, grant: bool,
                origin: Origin | None = None) -> bool:
    """Grant or take back an app role on a group: the super admin any, an app admin its
    apps' only (another app answers 404, as everywhere in the console)."""
    found = group(remit, ref)
    if remit is not None:
        if not remit.may_read_app(client_id):
            raise OutOfRemit()
        if not remit.may_change_app(client_id):
            raise ReadOnly()
    if clients.get(client_id) is None:
        raise AdminError(f"no client {client_id!r}")
    app_role = users.find_role(client_id, role)
    if app_role is None:
        raise AdminError(f"app {client_id!r} has no role {role!r}")
    changed = (store.grant if grant else store.revoke)(found, app_role)
    if changed:
        _audit(remit, "role.grant" if grant else "role.revoke", found, client_id=client_id,
               origin=origin, role=role)
    db.session.commit()
    return changed


def change_user_group(remit: Remit | None, user_id: int | str, ref: int | str, add: bool,
                      origin: Origin | None = None) -> bool:
    """The user page's side of membership: add the user to a group or take them out."""
    from .operations import user as find_user  # noqa: PLC0415

    member = find_user(remit, user_id) if remit is not None else None
    if member is None:
        raise OutOfRemit()
    _super(remit)
    if not str(ref).strip():
        raise AdminError("group: required")
    try:
        found = group(remit, ref)
    except OutOfRemit:
        raise AdminError(f"no group {str(ref).strip()[:64]!r}") from None
    changed = (store.add_member if add else store.remove_member)(found, member)
    if changed:
        _audit(remit, "member.add" if add else "member.remove", found, user_id=member.id,
               origin=origin, username=member.username)
    db.session.commit()
    return changed


def names() -> list[str]:
    return list(db.session.scalars(select(Group.name).order_by(Group.name)))
