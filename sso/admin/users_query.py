"""The console's user list: server-side search and keyset paging that stay fast at 100,000
users and beyond.

Paging walks ``username`` (unique, indexed) from the last one shown, never ``OFFSET``: page
two hundred costs what page one does. A search is a prefix of the username, email or mobile
number (indexed with pattern ops on PostgreSQL, see ``sso.admin.models``); an app admin only
ever sees users with an account or a role in their apps (held directly or through a group).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Select, exists, or_, select

from ..apps.models import AppAccount
from ..extensions import db
from ..users.models import AppRole, Group, GroupMember, GroupRole, User, UserRole, UserStatus
from .remit import Remit

PAGE_SIZE = 50
STATUSES = (UserStatus.ACTIVE, UserStatus.INVITED, UserStatus.PENDING, UserStatus.LOCKED,
            UserStatus.DISABLED)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class UserFilter:
    q: str = ""
    status: str = ""

    @classmethod
    def parse(cls, q: str | None, status: str | None) -> UserFilter:
        return cls(q=(q or "").strip()[:254], status=status if status in STATUSES else "")


def in_remit(remit: Remit) -> Select:  # type: ignore[type-arg]
    """Users the admin may see."""
    query = select(User)
    if remit.reads_everything:
        return query
    apps = list(remit.apps)
    return query.where(or_(
        exists().where(AppAccount.user_id == User.id, AppAccount.client_id.in_(apps)),
        exists().where(UserRole.user_id == User.id, UserRole.role_id == AppRole.id,
                       AppRole.client_id.in_(apps)),
        exists().where(GroupMember.user_id == User.id,
                       GroupMember.group_id.in_(_groups_granting(apps))),
    ))


def _groups_granting(apps: list[str]) -> Select:  # type: ignore[type-arg]
    """Groups whose members hold a role of ``apps``: those granting one, and every group
    nested under them (members of a child inherit the parent's roles)."""
    down = (select(GroupRole.group_id.label("group_id"))
            .join(AppRole, AppRole.id == GroupRole.role_id)
            .where(AppRole.client_id.in_(apps))
            .cte("groups_granting", recursive=True))
    down = down.union(select(Group.id).join(down, Group.parent_id == down.c.group_id))
    return select(down.c.group_id)


def _filtered(remit: Remit, where: UserFilter) -> Select:  # type: ignore[type-arg]
    query = in_remit(remit)
    if where.status:
        query = query.where(User.status == where.status)
    if where.q:
        prefix = _escape_like(where.q.lower()) + "%"
        query = query.where(or_(User.username.like(prefix, escape="\\"),
                                User.email.like(prefix, escape="\\"),
                                User.phone.like(_escape_like(where.q) + "%", escape="\\")))
    return query


def page(remit: Remit, where: UserFilter, after: str | None = None,
         size: int = PAGE_SIZE) -> tuple[list[User], str | None]:
    """One page of users ordered by username, starting after ``after``; returns the users
    and the username to continue after (None on the last page)."""
    query = _filtered(remit, where)
    if after:
        query = query.where(User.username > after[:64])
    rows = list(db.session.scalars(query.order_by(User.username).limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    return rows, (rows[-1].username if more and rows else None)


def find(remit: Remit, user_id: int) -> User | None:
    """The user, if the admin may see them (None reads as 404)."""
    return db.session.scalar(in_remit(remit).where(User.id == user_id))


EXPORT_COLUMNS = ("username", "email", "phone", "name", "status", "created_at")


def export_csv(remit: Remit, where: UserFilter, batch: int = 1000) -> Iterator[str]:
    """The filtered users as CSV, streamed in keyset batches."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    yield _drain(buffer)
    after: str | None = None
    while True:
        rows, after = page(remit, where, after, batch)
        for user in rows:
            writer.writerow([_cell(user.username), _cell(user.email), _cell(user.phone),
                             _cell(user.name), user.status,
                             user.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")])
        yield _drain(buffer)
        if after is None:
            return


def _cell(value: str | None) -> str:
    """A CSV cell a spreadsheet will not run as a formula (CSV injection)."""
    text = value or ""
    if text[1:].isdigit() and text[:1] == "+":
        return text  # a mobile number, not a formula
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
