"""The audit log: filters, keyset pages, CSV export of the filtered set."""

from __future__ import annotations

from flask import request, stream_with_context
from werkzeug.wrappers import Response

from ...extensions import db
from ...web import origin
from .. import AdminError, audit_query, operations
from ..remit import Remit
from .access import admin_page, message, page
from .blueprint import bp

FILTERS = ("since", "until", "actor", "user", "app", "event", "ip", "result")


def _filtered() -> tuple[dict[str, str], audit_query.AuditFilter | Response]:
    """The filters as typed, and what they select (or the page that says what is wrong)."""
    typed = {name: request.args.get(name, "")[:254] for name in FILTERS}
    try:
        return typed, audit_query.AuditFilter.parse(dict(typed))
    except AdminError as error:
        return typed, page("admin/audit.html", status=400, typed=typed, rows=[], before=None,
                           error=message(error))


@bp.get("/audit")
@admin_page
def audit(remit: Remit) -> Response:
    typed, where = _filtered()
    if isinstance(where, Response):
        return where
    raw_before = request.args.get("before", "")
    before = int(raw_before) if raw_before.isdigit() and len(raw_before) < 19 else None
    rows, next_before = audit_query.page(where, remit, before)
    return page("admin/audit.html", typed=typed, rows=rows, before=next_before,
                query={k: v for k, v in typed.items() if v})


@bp.get("/audit/export.csv")
@admin_page
def audit_export(remit: Remit) -> Response:
    typed, where = _filtered()
    if isinstance(where, Response):
        return where
    operations.audit(remit, "audit.export", origin=origin(),
                     filter={k: v for k, v in typed.items() if v})
    db.session.commit()
    body = stream_with_context(audit_query.export_csv(where, remit))
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": "attachment; filename=audit.csv"})
