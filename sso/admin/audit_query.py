"""The audit log, read: filters, keyset paging over millions of rows, CSV export, retention.

Rows are walked newest first by ``id`` (it grows with ``at``), from the last id shown; every
filter column has an ``(column, id)`` index (migration 0016), so a filtered page reads only
the rows it shows. The console, ``sso audit list|export|purge`` and the retention purge use
these functions.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, delete, select

from ..audit import AuditEvent
from ..dbtypes import utcnow
from ..extensions import db
from . import AdminError
from .remit import Remit

PAGE_SIZE = 100
RESULTS = ("success", "failure")


def parse_time(value: str | None, name: str) -> datetime | None:
    """``2026-12-01``, ``2026-12-01T08:00`` or with seconds, read as UTC."""
    if not value or not value.strip():
        return None
    text = value.strip().replace(" ", "T").removesuffix("Z")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise AdminError(f"{name}: not a date or time (YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass(frozen=True)
class AuditFilter:
    since: datetime | None = None
    until: datetime | None = None
    actor: str = ""
    user_id: int | None = None
    client_id: str = ""
    event: str = ""
    ip: str = ""
    result: str = ""

    @classmethod
    def parse(cls, values: dict[str, str | None]) -> AuditFilter:
        """Read the filter from form or option values; a bad one raises :class:`AdminError`."""
        since = parse_time(values.get("since"), "since")
        until = parse_time(values.get("until"), "until")
        if since and until and since > until:
            raise AdminError("since: after until")
        user_id = None
        raw_user = (values.get("user") or "").strip()
        if raw_user:
            from ..users.service import find_by_login  # noqa: PLC0415

            found = find_by_login(raw_user[:254])
            # An unknown user filters to nothing rather than to everything.
            user_id = found.id if found else -1
        result = (values.get("result") or "").strip()
        if result and result not in RESULTS:
            raise AdminError("result: success or failure")
        return cls(since=since, until=until, actor=(values.get("actor") or "").strip()[:128],
                   user_id=user_id, client_id=(values.get("app") or "").strip()[:64],
                   event=(values.get("event") or "").strip()[:64],
                   ip=(values.get("ip") or "").strip()[:45], result=result)


def _query(where: AuditFilter, remit: Remit | None) -> Select:  # type: ignore[type-arg]
    query = select(AuditEvent)
    if remit is not None and not remit.reads_everything:
        query = query.where(AuditEvent.client_id.in_(list(remit.apps)))
    if where.since:
        query = query.where(AuditEvent.at >= where.since)
    if where.until:
        query = query.where(AuditEvent.at < where.until)
    if where.actor:
        query = query.where(AuditEvent.actor == where.actor)
    if where.user_id is not None:
        query = query.where(AuditEvent.user_id == where.user_id)
    if where.client_id:
        query = query.where(AuditEvent.client_id == where.client_id)
    if where.event:
        query = query.where(AuditEvent.event == where.event)
    if where.ip:
        query = query.where(AuditEvent.ip == where.ip)
    if where.result:
        query = query.where(AuditEvent.outcome == where.result)
    return query


def page(where: AuditFilter, remit: Remit | None, before: int | None = None,
         size: int = PAGE_SIZE) -> tuple[list[AuditEvent], int | None]:
    """Newest first, older than id ``before``; returns the rows and the id to go on from."""
    query = _query(where, remit)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    rows = list(db.session.scalars(query.order_by(AuditEvent.id.desc()).limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    return rows, (rows[-1].id if more and rows else None)


COLUMNS = ("id", "at", "event", "result", "actor", "user_id", "subject", "client_id", "ip",
           "user_agent", "session_id", "details")


def row_of(event: AuditEvent) -> list[str]:
    return [str(event.id), event.at.strftime("%Y-%m-%dT%H:%M:%SZ"), event.event, event.outcome,
            event.actor or "", "" if event.user_id is None else str(event.user_id),
            _cell(event.subject), event.client_id or "", event.ip or "",
            _cell(event.user_agent), event.session_id or "",
            json.dumps(event.details or {}, ensure_ascii=False, sort_keys=True)]


def _cell(value: str | None) -> str:
    text = value or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_csv(where: AuditFilter, remit: Remit | None, batch: int = 2000) -> Iterator[str]:
    """The whole filtered set as CSV, streamed in keyset batches."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    before: int | None = None
    while True:
        rows, before = page(where, remit, before, batch)
        for event in rows:
            writer.writerow(row_of(event))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if before is None:
            return


def purge(days: int, now: datetime | None = None, batch: int = 10000) -> int:
    """Delete events older than ``days`` days (in batches, so a big purge does not hold one
    long lock); returns how many went. The purge itself is recorded."""
    if days < 1:
        raise AdminError("retention: at least one day")
    cutoff = (now or utcnow()) - timedelta(days=days)
    removed = 0
    while True:
        ids = list(db.session.scalars(select(AuditEvent.id).where(AuditEvent.at < cutoff)
                                      .order_by(AuditEvent.id).limit(batch)))
        if not ids:
            break
        db.session.execute(delete(AuditEvent).where(AuditEvent.id.in_(ids)))
        db.session.commit()
        removed += len(ids)
    from ..audit import record  # noqa: PLC0415

    record("audit.purge", days=days, removed=removed, before=cutoff.isoformat())
    db.session.commit()
    return removed
