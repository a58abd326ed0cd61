"""Groups (departments): their members inherit the group's roles and those of its parents.

The data the admin services change; no Flask request, no commit (the caller commits and
audits). The roles a group hands down are read with the user's own in one statement
(:meth:`~sso.users.models.User.roles_in`), so a change here shows in every token issued
afterwards.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from ..extensions import db
from .models import AppRole, Group, GroupMember, GroupRole, User, UserRole, groups_reached
from .service import UserError

#: A group's key: lower-case, starts with a letter (so it never reads as an id).
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
#: How deep departments nest; deeper is a typo more often than an organisation.
MAX_DEPTH = 10


def check_name(name: str) -> str:
    name = name.strip().lower()
    if not NAME_PATTERN.match(name):
        raise UserError("group name: 1-64 characters, lower-case letters, digits, '.', '_' or "
                        "'-', starting with a letter")
    return name


def _display_name(display_name: str | None, name: str) -> str:
    text = (display_name or "").strip()
    if len(text) > 128:
        raise UserError("display name: at most 128 characters")
    return text or name


def _description(description: str | None) -> str | None:
    text = (description or "").strip()
    if len(text) > 255:
        raise UserError("description: at most 255 characters")
    return text or None


def find(name: str) -> Group | None:
    return db.session.scalar(select(Group).where(Group.name == name.strip().lower()[:64]))


def get(group_id: int) -> Group | None:
    return db.session.get(Group, group_id)


def with_member_counts() -> list[tuple[Group, int]]:
    """Every group, by name, with how many members it has (its own, not its children's)."""
    counts = (select(GroupMember.group_id, func.count().label("n"))
              .group_by(GroupMember.group_id).subquery())
    rows = db.session.execute(
        select(Group, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.group_id == Group.id).order_by(Group.name))
    return [(group, int(count)) for group, count in rows]


def ancestors(group: Group) -> list[Group]:
    """The group's parent, grandparent, ...: nearest first."""
    found: list[Group] = []
    seen = {group.id}
    current = group.parent
    while current is not None and current.id not in seen:
        found.append(current)
        seen.add(current.id)
        current = current.parent
    return found


def children(group: Group) -> list[Group]:
    return list(db.session.scalars(select(Group).where(Group.parent_id == group.id)
                                   .order_by(Group.name)))


def _depth_below(group: Group) -> int:
    """How many levels of subgroups hang under ``group`` (0: none)."""
    level, frontier, seen = 0, [group.id], {group.id}
    while frontier:
        frontier = [i for i in db.session.scalars(select(Group.id).where(
            Group.parent_id.in_(frontier))) if i not in seen]
        seen.update(frontier)
        if frontier:
            level += 1
    return level


def set_parent(group: Group, parent: Group | None) -> bool:
    """Hang ``group`` under ``parent`` (None: top level); refuse a cycle. Returns whether
    it changed."""
    if parent is not None:
        if parent.id == group.id or group in ancestors(parent):
            raise UserError("a group cannot be placed under itself or one of its subgroups")
        if len(ancestors(parent)) + 2 + _depth_below(group) > MAX_DEPTH:
            raise UserError(f"groups nest at most {MAX_DEPTH} levels deep")
    new_id = parent.id if parent is not None else None
    if group.parent_id == new_id:
        return False
    group.parent = parent
    group.parent_id = new_id
    return True


def create(name: str, *, display_name: str | None = None, description: str | None = None,
           parent: Group | None = None) -> Group:
    name = check_name(name)
    if find(name) is not None:
        raise UserError("a group with that name already exists")
    group = Group(name=name, display_name=_display_name(display_name, name),
                  description=_description(description))
    db.session.add(group)
    db.session.flush()
    if parent is not None:
        set_parent(group, parent)
        db.session.flush()
    return group


def update(group: Group, *, name: str | None = None, display_name: str | None = None,
           description: str | None = None) -> dict[str, dict[str, str | None]]:
    """Rename (key and/or display name) and describe; returns the change, field by field."""
    values: dict[str, str | None] = {}
    if name is not None:
        values["name"] = check_name(name)
        if values["name"] != group.name and find(values["name"]) is not None:
            raise UserError("a group with that name already exists")
    if display_name is not None:
        values["display_name"] = _display_name(display_name, values.get("name") or group.name)
    if description is not None:
        values["description"] = _description(description)
    change: dict[str, dict[str, str | None]] = {}
    for field, value in values.items():
        if getattr(group, field) != value:
            change[field] = {"from": getattr(group, field), "to": value}
            setattr(group, field, value)
    return change


def member_count(group: Group) -> int:
    return int(db.session.scalar(select(func.count()).select_from(GroupMember).where(
        GroupMember.group_id == group.id)) or 0)


def delete(group: Group, *, detach_members: bool = False) -> int:
    """Delete the group and its role grants; returns how many members were detached.

    Refused while subgroups hang under it (move or delete them first: they would silently
    lose the roles they inherit), and while it has members unless ``detach_members``: the
    members lose what the group gave them, which the admin must mean."""
    if children(group):
        raise UserError("the group has subgroups; move or delete them first")
    members = member_count(group)
    if members and not detach_members:
        raise UserError("the group has members; remove them first or confirm that they are "
                        "removed with it")
    db.session.execute(db.delete(GroupMember).where(GroupMember.group_id == group.id))
    db.session.execute(db.delete(GroupRole).where(GroupRole.group_id == group.id))
    db.session.delete(group)
    db.session.flush()
    return members


def members(group: Group) -> list[User]:
    return list(db.session.scalars(
        select(User).join(GroupMember, GroupMember.user_id == User.id)
        .where(GroupMember.group_id == group.id).order_by(User.username)))


def _link(model: Any, **key: int) -> bool:
    """Add the association row ``key`` (a member, a group's role); False if it was there."""
    if db.session.get(model, tuple(key.values())) is not None:
        return False
    db.session.add(model(**key))
    db.session.flush()
    return True


def _unlink(model: Any, **key: int) -> bool:
    """Remove the association row ``key``; False if there was none."""
    row = db.session.get(model, tuple(key.values()))
    if row is None:
        return False
    db.session.delete(row)
    db.session.flush()
    return True


def add_member(group: Group, user: User) -> bool:
    return _link(GroupMember, group_id=group.id, user_id=user.id)


def remove_member(group: Group, user: User) -> bool:
    return _unlink(GroupMember, group_id=group.id, user_id=user.id)


def groups_of(user: User) -> list[Group]:
    """The groups the user is a member of (not their parents)."""
    return list(db.session.scalars(
        select(Group).join(GroupMember, GroupMember.group_id == Group.id)
        .where(GroupMember.user_id == user.id).order_by(Group.name)))


def grant(group: Group, role: AppRole) -> bool:
    return _link(GroupRole, group_id=group.id, role_id=role.id)


def revoke(group: Group, role: AppRole) -> bool:
    return _unlink(GroupRole, group_id=group.id, role_id=role.id)


def groups_with_role(role: AppRole) -> list[str]:
    """The names of the groups granting ``role`` (their members and subgroups' hold it)."""
    return list(db.session.scalars(
        select(Group.name).join(GroupRole, GroupRole.group_id == Group.id)
        .where(GroupRole.role_id == role.id).order_by(Group.name)))


def role_sources(user: User) -> list[tuple[str, str, str | None]]:
    """Every role the user holds as ``(client_id, role, via)``: ``via`` is None for a direct
    grant, else the name of the group (the user's or an ancestor of it) that hands it down.
    A role held both ways appears once per way, direct first."""
    direct = db.session.execute(
        select(AppRole.client_id, AppRole.name).join(UserRole, UserRole.role_id == AppRole.id)
        .where(UserRole.user_id == user.id))
    reach = groups_reached(user.id)
    inherited = db.session.execute(
        select(AppRole.client_id, AppRole.name, Group.name)
        .join(GroupRole, GroupRole.role_id == AppRole.id)
        .join(Group, Group.id == GroupRole.group_id)
        .where(GroupRole.group_id.in_(select(reach.c.group_id))))
    rows: list[tuple[str, str, str | None]] = [(c, r, None) for c, r in direct]
    rows += [(c, r, g) for c, r, g in inherited]
    return sorted(set(rows), key=lambda row: (row[0], row[1], row[2] is not None, row[2] or ""))


def effective_client_ids(user: User) -> set[str]:
    """The apps in which the user holds any role, directly or through a group."""
    return {client_id for client_id, _role, _via in role_sources(user)}
