"""Overview, activation queue and keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import current_app, redirect, request, url_for
from werkzeug.wrappers import Response

from ...i18n import gettext as _
from ...web import origin
from .. import AdminError, operations, service
from ..remit import Remit
from .access import admin_page, message, page
from .blueprint import bp


@bp.get("/")
@admin_page
def home(remit: Remit) -> Response:
    registrations, requests = operations.queue(remit, limit=100)
    return page("admin/home.html", waiting=len(registrations) + len(requests))


@bp.get("/queue")
@admin_page
def queue(remit: Remit) -> Response:
    registrations, requests = operations.queue(remit)
    return page("admin/queue.html", registrations=registrations, requests=requests,
                done=request.args.get("done", type=int), refused=request.args.getlist("refused"))


@bp.post("/queue")
@admin_page
def queue_decide(remit: Remit) -> Response:
    items = [item[:200] for item in request.form.getlist("item")]
    decision = request.form.get("decision", "")
    if not items:
        registrations, requests = operations.queue(remit)
        return page("admin/queue.html", status=400, registrations=registrations,
                    requests=requests, error=_("Select at least one request."))
    try:
        done, refused = operations.decide(remit, items, decision, origin())
    except AdminError as error:
        registrations, requests = operations.queue(remit)
        return page("admin/queue.html", status=400, registrations=registrations,
                    requests=requests, error=message(error))
    return redirect(url_for("admin.queue", done=done,  # type: ignore[return-value]
                            refused=refused[:20]))


def _epoch(value: Any, default: float) -> float:
    """A key's time as seconds since the epoch (the store gives datetimes, exports numbers)."""
    if value is None:
        return default
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value)


@bp.get("/keys")
@admin_page
def keys(remit: Remit) -> Response:
    if not remit.reads_everything:
        raise operations.OutOfRemit()
    now = datetime.now(UTC).timestamp()
    rows = [{**entry, "age_days": int((now - _epoch(entry.get("created_at"), now)) // 86400)}
            for entry in service.describe_keys()]
    rows.sort(key=lambda e: (e["alg"], ["active", "next", "retired"].index(e["state"])
                             if e["state"] in ("active", "next", "retired") else 3))
    return page("admin/keys.html", keys=rows, rotated=request.args.get("rotated") == "1",
                retire_after=current_app.config.get("ACCESS_TOKEN_TTL"))


@bp.post("/keys/rotate")
@admin_page
def keys_rotate(remit: Remit) -> Response:
    operations.rotate_keys(remit, origin())
    return redirect(url_for("admin.keys", rotated=1))  # type: ignore[return-value]
