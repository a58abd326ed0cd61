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
                retire_after=service.longest_token_ttl(),
                grace=int(current_app.config["KEY_RETIREMENT_GRACE"]))


@bp.post("/keys/rotate")
@admin_page
def keys_rotate(remit: Remit) -> Response:
    operations.rotate_keys(remit, origin())
    return redirect(url_for("admin.keys", rotated=1))  # type: ignore[return-value]


@bp.get("/registration")
@admin_page
def registration(remit: Remit) -> Response:
    from .. import registration as dcr  # noqa: PLC0415

    if not remit.super_admin:
        raise operations.ReadOnly()
    return page("admin/registration.html", tokens=dcr.initial_tokens(),
                notice=request.args.get("notice"))


@bp.post("/registration")
@admin_page
def registration_issue(remit: Remit) -> Response:
    from .. import registration as dcr  # noqa: PLC0415

    raw = request.form.get("hours", "24").strip()
    try:
        if not raw.isdigit() or len(raw) > 4:
            raise AdminError("hours: 1 to 720")
        token = dcr.issue_initial_token(remit, hours=int(raw),
                                        label=request.form.get("label", "")[:128],
                                        for_login=request.form.get("for", "")[:254] or None)
    except AdminError as error:
        if not remit.super_admin:
            raise operations.ReadOnly() from None
        return page("admin/registration.html", status=400, tokens=dcr.initial_tokens(),
                    error=message(error))
    return page("admin/registration.html", tokens=dcr.initial_tokens(), new_token=token)


@bp.post("/registration/<token_id>/revoke")
@admin_page
def registration_revoke(remit: Remit, token_id: str) -> Response:
    from .. import registration as dcr  # noqa: PLC0415

    if not token_id.isdigit() or len(token_id) > 12:
        raise operations.OutOfRemit()
    dcr.revoke_initial_token(remit, int(token_id))
    return redirect(url_for("admin.registration",  # type: ignore[return-value]
                            notice=_("The token was revoked.")))
