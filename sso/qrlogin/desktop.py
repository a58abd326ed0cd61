"""Scan to sign in, the desktop's side: the tab with the code, its event stream (and
long-poll fallback), and the completion that signs the desktop in through the passage."""

from __future__ import annotations

import json
from typing import Any

import qrcode
import qrcode.image.svg
from flask import Blueprint, current_app, jsonify, render_template, request, url_for
from werkzeug.wrappers import Response

from .. import ratelimit
from ..dbtypes import utcnow
from ..extensions import db
from ..flow import passage
from ..flow.pending import Target, target_from_request
from ..i18n import gettext as _
from ..web import origin
from . import broker as broker_module
from . import qr_broker, qr_store, service
from .pages import unavailable_message
from .store import DENIED, MISSING, PENDING, SCANNED, WRONG_SECRET, Outcome, Unavailable

bp = Blueprint("qrlogin", __name__)

DESKTOP_COOKIE = "sso_qr"


def desktop_cookie(qr_id: str) -> tuple[str, str]:
    """The name and path of the desktop's secret cookie. On https it is ``__Host-`` (path /,
    so the code's id goes into the name); on plain http it keeps to the code's own paths."""
    if current_app.config["SESSION_COOKIE_SECURE"]:
        return f"__Host-{DESKTOP_COOKIE}-{qr_id}", "/"
    return DESKTOP_COOKIE, f"/qr/sessions/{qr_id}"


def _svg(url: str) -> bytes:
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathFillImage, border=4,
                        box_size=10)
    return image.to_string()  # type: ignore[no-any-return]


def _phone_url(qr_id: str) -> str:
    return f"{current_app.config['ISSUER']}/qr/s/{qr_id}"


@bp.get("/qr/login")
def desktop() -> Response:
    target = target_from_request()
    if isinstance(target, Response):
        return target
    return _desktop_page(target)


def _desktop_page(target: Target, error: str | None = None, status: int = 200) -> Response:
    html = render_template(
        "qrlogin/desktop.html", flow=target.flow_id or "", client_name=target.client_name,
        available=qr_store().ping(), error=error,
    )
    return Response(html, status=status, mimetype="text/html")


@bp.post("/qr/sessions")
def create() -> Response:
    config = current_app.config
    if not ratelimit.allow("qr-create-ip", request.remote_addr or "-",
                           config["RATE_LIMIT_QR_CREATE_IP"]):
        response = ratelimit.too_many_json()
        response.set_data(json.dumps({"error": "slow_down", "message": _(
            "Too many codes requested. Please wait a minute.")}))
        return response
    target = target_from_request()
    if isinstance(target, Response):
        return _json_error(400, "invalid_flow", _(
            "This sign-in request has expired. Go back to the app and try again."))
    pending = target.pending
    try:
        created = service.start(
            qr_store(), client_id=pending.params.get("client_id", "") if pending else "",
            client_name=pending.client_name if pending else "",
            acr_values=pending.params.get("acr_values", "") if pending else "",
            desktop=origin(),
        )
    except Unavailable:
        return _json_error(503, "unavailable", unavailable_message())
    db.session.commit()
    qr = created.session
    response = jsonify(
        id=qr.id, expires_in=config["QR_TTL"], number=qr.number,
        image_url=url_for("qrlogin.image", qr_id=qr.id),
        events_url=url_for("qrlogin.events", qr_id=qr.id),
        poll_url=url_for("qrlogin.poll", qr_id=qr.id),
        number_url=url_for("qrlogin.number", qr_id=qr.id),
        complete_url=url_for("qrlogin.complete", qr_id=qr.id),
    )
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    # The desktop's proof, never in the QR: HttpOnly, only sent to this session's own paths.
    name, path = desktop_cookie(qr.id)
    response.set_cookie(name, created.secret, max_age=config["QR_TTL"], path=path,
                        secure=config["SESSION_COOKIE_SECURE"], httponly=True,
                        samesite="Strict")
    return response


def _json_error(status: int, error: str, message: str, **extra: Any) -> Response:
    response = jsonify(error=error, message=message, **extra)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _desktop_owns(qr_id: str) -> bool:
    return qr_store().owns(qr_id, request.cookies.get(desktop_cookie(qr_id)[0]))


@bp.get("/qr/sessions/<qr_id>/qr.svg")
def image(qr_id: str) -> Response:
    try:
        if not _desktop_owns(qr_id):
            return Response(status=404)
    except Unavailable:
        return Response(status=503)
    response = Response(_svg(_phone_url(qr_id)), mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/qr/sessions/<qr_id>/number")
def number(qr_id: str) -> Response:
    """The number to show once scanned: set at creation by the app's policy, or at the scan
    when the phone is on another network (then the phone must pick it)."""
    try:
        qr = qr_store().get(qr_id) if _desktop_owns(qr_id) else None
    except Unavailable:
        return _json_error(503, "unavailable", unavailable_message())
    if qr is None:
        return _json_error(404, "expired", _("This code has expired."))
    response = jsonify(number=qr.number, far=qr.far)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/qr/sessions/<qr_id>/events")
def events(qr_id: str) -> Response:
    """Server-sent events: the state now, then each change, until a final state."""
    try:
        owned = _desktop_owns(qr_id)
    except Unavailable:
        owned = False
    config = current_app.config
    db.session.remove()  # a waiting stream holds no database connection
    if not owned:
        # Not an error status: EventSource would retry it forever. A final state ends it.
        body = broker_module.sse("expired")
        return Response(body, mimetype="text/event-stream", headers={"Cache-Control": "no-store"})
    stream = broker_module.events(qr_broker(), qr_id, heartbeat=float(config["QR_HEARTBEAT"]),
                                  retry_ms=2000)
    return Response(stream, mimetype="text/event-stream", headers={
        "Cache-Control": "no-store", "X-Accel-Buffering": "no",
    })


@bp.get("/qr/sessions/<qr_id>/poll")
def poll(qr_id: str) -> Response:
    """Long-poll fallback for browsers without EventSource: wait for a state other than
    ``known``."""
    try:
        owned = _desktop_owns(qr_id)
    except Unavailable:
        owned = False
    db.session.remove()
    if not owned:
        return jsonify(state="expired")
    known = request.args.get("known", "")[:16]
    state = broker_module.wait_for_change(qr_broker(), qr_id, known,
                                          float(current_app.config["QR_LONG_POLL"]))
    response = jsonify(state=state)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/qr/sessions/<qr_id>/complete")
def complete(qr_id: str) -> Response:
    target = target_from_request()
    if isinstance(target, Response):
        return target
    if not ratelimit.allow("qr-complete-ip", request.remote_addr or "-",
                           current_app.config["RATE_LIMIT_QR_CREATE_IP"]):
        return _desktop_page(target, _("Please wait a moment and try again."), 429)
    secret = request.cookies.get(desktop_cookie(qr_id)[0], "")
    decision = request.form.get("decision", "")
    if decision != "continue":
        return _ask_who(target, qr_id, secret, not_me=decision == "not_me")
    try:
        outcome, user, proofs = service.consume(qr_store(), qr_id, secret, origin(), utcnow())
    except Unavailable:
        return _desktop_page(target, unavailable_message(), 503)
    if not outcome.ok or user is None:
        db.session.commit()
        return _refused(target, outcome.result)
    return _finish(target, qr_id, user, proofs)


def _refused(target: Target, result: str) -> Response:
    if result == WRONG_SECRET:
        message = _("This code belongs to another browser. Make a new code.")
    elif result in (PENDING, SCANNED):
        message = _("This sign-in has not been approved on the phone yet.")
    elif result == DENIED:
        message = _("This sign-in was cancelled.")
    else:
        message = _("This code has expired or was already used. Make a new code.")
    return _desktop_page(target, message, 409 if result != MISSING else 404)


def _ask_who(target: Target, qr_id: str, secret: str, *, not_me: bool) -> Response:
    """The desktop confirms who approved before it is signed in (RFC 10027, session swap):
    "Signed in as alice, continue?" with *Continue* and *Not me*; "Not me" cancels."""
    try:
        if not_me:
            outcome = service.reject(qr_store(), qr_id, secret, origin())
            db.session.commit()
            if outcome.ok:
                return _desktop_page(target, _(
                    "Cancelled: nobody was signed in. Make a new code and keep it to "
                    "yourself."), 200)
            return _refused(target, outcome.result)
        found = service.approver(qr_store(), qr_id, secret)
    except Unavailable:
        return _desktop_page(target, unavailable_message(), 503)
    if isinstance(found, Outcome):
        db.session.commit()
        return _refused(target, found.result)
    qr, user = found
    html = render_template("qrlogin/desktop_who.html", flow=target.flow_id or "",
                           client_name=target.client_name, qr=qr, user=user,
                           action=url_for("qrlogin.complete", qr_id=qr_id))
    return Response(html, mimetype="text/html")


def _finish(target: Target, qr_id: str, user: Any, proofs: Any) -> Response:
    response = passage.finish(target, door="qr-desktop", user=user, proofs=proofs)
    name, path = desktop_cookie(qr_id)
    response.delete_cookie(name, path=path, secure=current_app.config["SESSION_COOKIE_SECURE"],
                           httponly=True, samesite="Strict")
    return response
