"""Bulk import of users from CSV or XLSX, with a dry run.

The dry run reads every row and lists each one's errors (the same rules ``sso users create``
applies, plus duplicates within the file) before anything is written. The admin then imports
the valid rows, or nothing. The parsed rows wait in Redis for an hour, bound to the admin who
uploaded them; 10,000 rows go in one import.

Columns (a header row, any order, case-insensitive): ``username`` (required), ``email``,
``phone``, ``name``, and optionally ``groups``: names of existing groups separated by ``;``
or ``,``, which the user joins (an unknown group is the row's error). Every imported user is
invited: an activation link by email, or a code by SMS when there is only a mobile number.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from ..accounts import lifecycle
from ..audit import record
from ..extensions import db, get_redis
from ..users import service as users
from ..users.models import Group, GroupMember, User
from . import AdminError

MAX_ROWS = 10_000
MAX_BYTES = 5 * 1024 * 1024
COLUMNS = ("username", "email", "phone", "name", "groups")
GROUP_SEPARATORS = re.compile(r"[;,]")
TTL = 3600


@dataclass
class Row:
    line: int
    username: str
    email: str | None
    phone: str | None
    name: str | None
    errors: list[str] = field(default_factory=list)
    #: Existing groups the user joins (the optional ``groups`` column).
    groups: list[str] = field(default_factory=list)


@dataclass
class DryRun:
    import_id: str
    rows: list[Row]

    @property
    def valid(self) -> list[Row]:
        return [r for r in self.rows if not r.errors]

    @property
    def invalid(self) -> list[Row]:
        return [r for r in self.rows if r.errors]


def _table(filename: str, data: bytes) -> list[list[str]]:
    """The file's rows as lists of text cells."""
    if len(data) > MAX_BYTES:
        raise AdminError("file: larger than 5 MB")
    if filename.lower().endswith(".xlsx"):
        return _xlsx(data)
    if not filename.lower().endswith(".csv"):
        raise AdminError("file: a .csv or .xlsx file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise AdminError("file: not UTF-8 or GB18030 text") from None
    if "\x00" in text:
        raise AdminError("file: not a CSV file")
    try:
        return [row for row in csv.reader(io.StringIO(text))]
    except csv.Error:
        raise AdminError("file: not a CSV file") from None


def _xlsx(data: bytes) -> list[list[str]]:
    from openpyxl import load_workbook  # noqa: PLC0415 - only imports need it

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 - openpyxl raises many kinds for a bad file
        raise AdminError("file: not an XLSX workbook") from None
    sheet = book.worksheets[0]
    rows = []
    for count, values in enumerate(sheet.iter_rows(values_only=True)):
        if count > MAX_ROWS + 1:
            break
        rows.append(["" if v is None else str(v) for v in values])
    book.close()
    return rows


def _clean(value: str | None, limit: int) -> str | None:
    text = (value or "").strip()
    return text[:limit + 1] or None


def parse(filename: str, data: bytes) -> list[Row]:
    table = [r for r in _table(filename, data) if any(c.strip() for c in r)]
    if not table:
        raise AdminError("file: empty")
    header = [c.strip().lower() for c in table[0]]
    if "username" not in header:
        raise AdminError("file: the first row must name the columns (username, email, "
                         "phone, name)")
    if len(table) - 1 > MAX_ROWS:
        raise AdminError("file: more than 10000 rows")
    index = {name: header.index(name) for name in COLUMNS if name in header}

    def cell(row: list[str], name: str) -> str | None:
        at = index.get(name)
        return row[at] if at is not None and at < len(row) else None

    return [Row(line=number, username=(_clean(cell(row, "username"), 64) or ""),
                email=_clean(cell(row, "email"), 254), phone=_clean(cell(row, "phone"), 32),
                name=_clean(cell(row, "name"), 128), groups=_group_names(cell(row, "groups")))
            for number, row in enumerate(table[1:], start=2)]


def _group_names(value: str | None) -> list[str]:
    names = [n.strip().lower()[:65] for n in GROUP_SEPARATORS.split(value or "")]
    return list(dict.fromkeys(n for n in names if n))[:20]


def _check_groups(rows: list[Row]) -> None:
    """Each row's unknown groups are its errors (one lookup for the whole file)."""
    wanted = sorted({name for row in rows for name in row.groups})
    known = set(db.session.scalars(select(Group.name).where(Group.name.in_(wanted)))
                ) if wanted else set()
    for row in rows:
        row.errors.extend(f"no group {name!r}" for name in row.groups if name not in known)


def _join_groups(user: User, row: Row, actor: str) -> None:
    """The per-row apply of the ``groups`` column: the new user joins its groups (checked
    again with the row just before, so they exist)."""
    if not row.groups:
        return
    for group_id, name in db.session.execute(
            select(Group.id, Group.name).where(Group.name.in_(row.groups))):
        db.session.add(GroupMember(group_id=group_id, user_id=user.id))
        record("admin.group.member.add", user_id=user.id, actor=actor,
               change={"group": name, "username": user.username, "via": "import"})


def check(rows: list[Row]) -> None:
    """Fill each row's errors: the account rules, duplicates in the file and in the database."""
    for row in rows:
        row.username = users.normalise_username(row.username) if row.username else ""
        row.email = users.normalise_email(row.email)
        row.phone = users.normalise_phone(row.phone)
        if not row.username:
            row.errors.append("username: required")
        elif not users.USERNAME_PATTERN.match(row.username):
            row.errors.append("username: 2-64 characters, letters, digits, '.', '_' or '-'")
        if row.email and not users.EMAIL_PATTERN.match(row.email):
            row.errors.append("email: not a valid address")
        if row.phone and not users.PHONE_PATTERN.match(row.phone):
            row.errors.append("phone: digits only, optionally with a leading +")
        if not row.email and not row.phone:
            row.errors.append("an invitation needs an email address or a mobile number")
        if row.name and len(row.name) > 128:
            row.errors.append("name: at most 128 characters")
    seen: dict[str, int] = {}
    for row in rows:
        for key in filter(None, (row.username, row.email)):
            if key in seen:
                row.errors.append(f"duplicate of line {seen[key]}")
                break
        for key in filter(None, (row.username, row.email)):
            seen.setdefault(key, row.line)
    names = {key for row in rows for key in (row.username, row.email) if key}
    taken: set[str] = set()
    ordered = sorted(names)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start:start + 500]
        for username, email in db.session.execute(select(User.username, User.email).where(
                User.username.in_(chunk) | User.email.in_(chunk))):
            taken.update(filter(None, (username, email)))
    for row in rows:
        if row.username in taken or (row.email and row.email in taken):
            row.errors.append("a user with that username or email already exists")
    _check_groups(rows)


def _key(import_id: str) -> str:
    return get_redis().key("admin", "import", import_id)


def dry_run(filename: str, data: bytes, admin_id: int) -> DryRun:
    """Read and check the file; keep the rows for :func:`commit`. Writes no user."""
    rows = parse(filename, data)
    check(rows)
    result = DryRun(import_id=secrets.token_urlsafe(16), rows=rows)
    payload = json.dumps({"admin": admin_id, "rows": [asdict(r) for r in rows]})
    get_redis().client.set(_key(result.import_id), payload, ex=TTL)
    return result


def load(import_id: str, admin_id: int) -> DryRun | None:
    if not import_id or len(import_id) > 64:
        return None
    raw = get_redis().client.get(_key(import_id))
    if raw is None:
        return None
    payload: dict[str, Any] = json.loads(raw)
    if payload["admin"] != admin_id:
        return None
    return DryRun(import_id=import_id, rows=[Row(**r) for r in payload["rows"]])


def commit(import_id: str, admin_id: int, *, actor: str, locale: str | None) -> tuple[int, int]:
    """Invite the valid rows, checked again (the database may have changed since the dry
    run); returns (imported, skipped). One transaction: all the valid rows or none."""
    found = load(import_id, admin_id)
    if found is None:
        raise AdminError("this import expired; upload the file again")
    rows = [Row(**{**asdict(r), "errors": []}) for r in found.rows if not r.errors]
    check(rows)
    valid = [r for r in rows if not r.errors]
    for row in valid:
        try:
            user, _channel = lifecycle.invite(row.username, email=row.email, phone=row.phone,
                                              name=row.name, locale=locale, actor=actor)
        except ValueError as error:
            raise AdminError(f"line {row.line}: {error}; nothing was imported") from None
        _join_groups(user, row, actor)
        # The rows are flushed; forgetting their objects keeps each next row's work (the
        # services' ORM updates look through the session) from growing with the import.
        db.session.flush()
        db.session.expunge_all()
    get_redis().client.delete(_key(import_id))
    return len(valid), len(found.rows) - len(valid)
