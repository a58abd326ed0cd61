"""Bulk import of users from CSV or XLSX, with a dry run.

The dry run reads every row and lists each one's errors (the same rules ``sso users create``
applies, plus duplicates within the file) before anything is written. The admin then imports
the valid rows, or nothing. The parsed rows wait in Redis for an hour, bound to the admin who
uploaded them; up to 10,000 rows go in one import.

Importing is a job (:class:`~sso.admin.models.ImportJob`), not a request's work: the console
queues it and answers at once, and the delivery loop's "jobs" lane writes it in batches
(:func:`work`). Each batch commits with the job's progress in the same transaction, under a
claim with a lease, so a worker that dies mid-way leaves no half batch, and another worker
picks the job up where the last batch ended once the lease has lapsed.

Columns (a header row, any order, case-insensitive): ``username`` (required), ``email``,
``phone``, ``name``, and optionally ``groups``: names of existing groups separated by ``;``
or ``,``, which the user joins (an unknown group is the row's error). Every imported user is
invited: an activation link by email, or a code by SMS when there is only a mobile number.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from .. import audit, outbox
from ..accounts import lifecycle
from ..audit import record
from ..dbtypes import utcnow
from ..extensions import db, get_redis
from ..users import service as users
from ..users.models import Group, GroupMember, User
from . import AdminError
from . import remit as remits
from .models import ImportJob

log = logging.getLogger(__name__)

MAX_ROWS = 10_000
MAX_BYTES = 5 * 1024 * 1024
COLUMNS = ("username", "email", "phone", "name", "groups")
GROUP_SEPARATORS = re.compile(r"[;,]")
TTL = 3600
#: Rows written in one transaction; the job's progress moves with each batch.
BATCH = 100
#: How long a worker's claim on a job lasts without a batch committing (renewed by each).
LEASE_SECONDS = 120
#: Refused rows kept on the job for the progress page.
MAX_FAILURES = 1000
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


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
    filename: str = ""

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
    result = DryRun(import_id=secrets.token_urlsafe(16), rows=rows, filename=filename)
    payload = json.dumps({"admin": admin_id, "rows": [asdict(r) for r in rows],
                          "filename": filename})
    get_redis().client.set(_key(result.import_id), payload, ex=TTL)
    return result


def _payload(import_id: str, admin_id: int) -> dict[str, Any] | None:
    if not import_id or len(import_id) > 64:
        return None
    raw = get_redis().client.get(_key(import_id))
    if raw is None:
        return None
    payload: dict[str, Any] = json.loads(raw)
    return payload if payload["admin"] == admin_id else None


def load(import_id: str, admin_id: int) -> DryRun | None:
    payload = _payload(import_id, admin_id)
    if payload is None:
        return None
    return DryRun(import_id=import_id, rows=[Row(**r) for r in payload["rows"]],
                  filename=str(payload.get("filename") or ""))


def enqueue(import_id: str, remit: remits.Remit, *, locale: str | None) -> ImportJob:
    """Queue the dry run's valid rows as an import job (flushes; the caller commits, then
    :func:`wake` the worker). The rows are checked again when they are written."""
    if not remit.may_change_users:
        raise AdminError("only a super admin imports users")
    payload = _payload(import_id, remit.user_id)
    if payload is None:
        raise AdminError("this import expired; upload the file again")
    # The stored rows as they are (no dataclass round trip: 10,000 rows queue in one request).
    rows = [{k: v for k, v in r.items() if k != "errors"} for r in payload["rows"]
            if not r["errors"]]
    job = ImportJob(admin_id=remit.user_id, actor=remit.actor,
                    filename=str(payload.get("filename") or "")[:255], locale=locale,
                    rows=rows, total=len(rows), done=0, imported=0, failed=0,
                    skipped=len(payload["rows"]) - len(rows), status=QUEUED, failures=[],
                    created_at=utcnow())
    db.session.add(job)
    db.session.flush()
    get_redis().client.delete(_key(import_id))
    return job


def wake() -> None:
    """Have this process's worker look for the job now (others poll within seconds)."""
    outbox.wake("jobs")


def job_of(job_id: int | str, admin_id: int) -> ImportJob | None:
    """The admin's own job, or None (another admin's or an unknown id)."""
    if isinstance(job_id, str):
        if not job_id.isdigit() or len(job_id) > 12:
            return None
        job_id = int(job_id)
    job = db.session.get(ImportJob, job_id)
    return job if job is not None and job.admin_id == admin_id else None


def progress(job: ImportJob) -> dict[str, Any]:
    """What the progress page shows, and its JSON endpoint answers."""
    return {"id": job.id, "status": job.status, "total": job.total, "done": job.done,
            "imported": job.imported, "failed": job.failed, "skipped": job.skipped,
            "error": job.error, "finished": job.status in (DONE, FAILED)}


def _claim(now: datetime, job_id: int | None = None) -> tuple[int, str] | None:
    """Take the oldest queued or abandoned (lease lapsed) job; commits the claim."""
    query = (select(ImportJob.id)
             .where(ImportJob.status.in_((QUEUED, RUNNING)),
                    or_(ImportJob.claimed_until.is_(None), ImportJob.claimed_until < now))
             .order_by(ImportJob.id).limit(5))
    if job_id is not None:
        query = query.where(ImportJob.id == job_id)
    for candidate in db.session.scalars(query).all():
        token = secrets.token_hex(16)
        won = db.session.execute(
            update(ImportJob)
            .where(ImportJob.id == candidate, ImportJob.status.in_((QUEUED, RUNNING)),
                   or_(ImportJob.claimed_until.is_(None), ImportJob.claimed_until < now))
            .values(claim_token=token, claimed_until=now + timedelta(seconds=LEASE_SECONDS),
                    status=RUNNING)).rowcount
        db.session.commit()
        if won:
            return candidate, token
    db.session.rollback()
    return None


class LostClaim(Exception):
    """Another worker holds the job now (this one's lease lapsed): its batch is undone."""


def _write(row: Row, locale: str | None, actor: str) -> None:
    """Invite one checked row (the accounts service audits the user's creation) and put the
    user in the row's groups."""
    user, _channel = lifecycle.invite(row.username, email=row.email, phone=row.phone,
                                      name=row.name, locale=locale, actor=actor)
    _join_groups(user, row, actor)


def _batch(job_id: int, token: str) -> bool:
    """Write the next batch of the job in one transaction; False once the job has ended."""
    job = db.session.get(ImportJob, job_id)
    if job is None or job.claim_token != token or job.status != RUNNING:
        db.session.rollback()
        raise LostClaim()
    start, total, locale, actor = job.done, job.total, job.locale, job.actor
    failures = list(job.failures or [])
    admin = db.session.get(User, job.admin_id) if job.admin_id is not None else None
    remit = remits.of(admin)
    if remit is None or not remit.may_change_users:
        # The admin lost the right to import since queuing it: write nothing more.
        _finish(job_id, token, FAILED, error="the admin who started this import may no longer "
                "import users")
        return False
    chunk = [Row(**{**r, "errors": []}) for r in job.rows[start:start + BATCH]]
    db.session.expunge(job)  # keep the 10,000-row JSON out of the flushes below
    check(chunk)
    imported = 0
    for row in chunk:
        if row.errors:
            _note(failures, row, row.errors[0])
            continue
        try:
            with db.session.begin_nested():
                _write(row, locale, actor)
        except (ValueError, IntegrityError) as error:  # refused, or taken meanwhile
            _note(failures, row, str(error))
            continue
        imported += 1
        # The rows are flushed; forgetting their objects keeps each next row's work (the
        # services' ORM updates look through the session) from growing with the import.
        db.session.expunge_all()
    end = start + len(chunk)
    moved = db.session.execute(
        update(ImportJob)
        .where(ImportJob.id == job_id, ImportJob.claim_token == token, ImportJob.done == start)
        .values(done=end, imported=ImportJob.imported + imported,
                failed=ImportJob.failed + (len(chunk) - imported),
                failures=failures[:MAX_FAILURES],
                claimed_until=utcnow() + timedelta(seconds=LEASE_SECONDS))).rowcount
    if not moved:
        db.session.rollback()
        raise LostClaim()
    db.session.commit()
    if end >= total:
        _finish(job_id, token, DONE)
        return False
    return True


def _note(failures: list[dict[str, Any]], row: Row, error: str) -> None:
    if len(failures) < MAX_FAILURES:
        failures.append({"line": row.line, "username": row.username, "error": error})


def _finish(job_id: int, token: str, status: str, error: str | None = None) -> None:
    """End the job and record it as the console's synchronous import did."""
    db.session.rollback()
    job = db.session.get(ImportJob, job_id)
    if job is None or job.claim_token != token:
        raise LostClaim()
    job.status, job.error, job.finished_at = status, error, utcnow()
    job.claim_token = job.claimed_until = None
    job.rows = []  # written: the addresses need not stay in the table
    audit.record("admin.users.import", audit.SUCCESS if status == DONE else audit.FAILURE,
                 actor=job.actor, admin_id=job.admin_id,
                 change={"job": job_id, "file": job.filename, "imported": job.imported,
                         "skipped": job.skipped + job.failed, "failed": job.failed,
                         **({"error": error} if error else {})})
    db.session.commit()


def work(now: datetime | None = None, *, job_id: int | None = None,
         max_batches: int | None = None) -> bool:
    """Claim one job and write it, batch after batch; True if a job was worked on.

    ``max_batches`` stops early and releases the claim (the next pass goes on); a worker
    that dies instead leaves its claim to lapse after :data:`LEASE_SECONDS`.
    """
    claimed = _claim(now or utcnow(), job_id)
    if claimed is None:
        return False
    job_id_, token = claimed
    db.session.execute(update(ImportJob).where(ImportJob.id == job_id_,
                                               ImportJob.started_at.is_(None))
                       .values(started_at=utcnow()))
    db.session.commit()
    batches = 0
    try:
        while _batch(job_id_, token):
            batches += 1
            if max_batches is not None and batches >= max_batches:
                db.session.execute(update(ImportJob).where(
                    ImportJob.id == job_id_, ImportJob.claim_token == token)
                    .values(claim_token=None, claimed_until=None))
                db.session.commit()
                break
    except LostClaim:
        log.warning("import job %s: another worker took it over", job_id_)
    except Exception as error:  # noqa: BLE001 - recorded on the job, which then stops
        # (if the database itself is away, recording fails too: the claim lapses and a
        # worker tries the job again later)
        db.session.rollback()
        log.exception("import job %s failed", job_id_)
        with contextlib.suppress(LostClaim):
            _finish(job_id_, token, FAILED, error=f"{type(error).__name__}: {error}"[:500])
    return True


def init_app(app: Flask) -> None:
    """Run queued import jobs in the delivery loop's "jobs" lane of every process."""

    def run() -> bool:
        # A pass ends after a few batches, so the loop notices it is stopping; it returns
        # True while there may be more, and the next pass follows at once.
        return work(max_batches=20)

    outbox.every_pass(app, run, lane="jobs")

