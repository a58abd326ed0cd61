"""QR-login routes: the desktop tab and its event stream, the phone's pages, the phone API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import qrcode
import qrcode.image.svg
from flask import (
    Blueprint,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response

from .. import audit, ratelimit
from ..dbtypes import utcnow
from ..extensions import db
from ..flow import web as flow_web
from ..i18n import gettext as _
from ..oidc.keys import InvalidJWS
from ..oidc.models import Client
from ..sessions import service as sessions
from ..sessions.models import SSOSession
from ..users.models import User
from ..web import allow_form_action, csrf_exempt, origin
from . import broker as broker_module
from . import qr_broker, qr_store, service
from .store import (
    DENIED,
    ID_PATTERN,
    MISSING,
    OTHER_USER,
    PENDING,
    SCANNED,
    WRONG_NUMBER,
    WRONG_SECRET,
    Outcome,
    QRSession,
    Unavailable,
    parse_json_number,
)
from .useragent import describe

bp = Blueprint("qrlogin", __name__)
api = Blueprint("qrlogin_api", __name__)

DESKTOP_COOKIE = "sso_qr"
PHONE_RESUME = "qrlogin.phone_resume"
OPENAPI = Path(__file__).with_name("openapi.json")


def _unavailable_message() -> str:
    return _("Scan to sign in is unavailable right now. Please sign in with your password.")


def _message(title: str, message: str, status: int) -> Response:
    html = render_template("qrlogin/message.html", title=title, message=message)
    return Response(html, status=status, mimetype="text/html")


def _outcome_page(outcome: Outcome) -> Response:
    """A readable page for a transition that did not happen."""
    result = outcome.result
    if result == MISSING:
        return _message(_("This code has expired"), _(
            "This code has expired or is not valid. Make a new code on your computer."), 404)
    if result == OTHER_USER:
        return _message(_("Code already scanned"),
                        _("This code was scanned with another account."), 409)
    if result == WRONG_NUMBER:
        return _message(_("Sign-in cancelled"), _(
            "The number you picked does not match the one on your computer. The sign-in was "
            "cancelled for your safety."), 400)
    if result == DENIED:
        return _message(_("Sign-in cancelled"), _("This sign-in was cancelled."), 409)
    if result == PENDING:
        return _message(_("Scan the code first"),
                        _("Open this page by scanning the code on your computer."), 409)
    return _message(_("Code already used"), _("This code has already been used."), 409)


def _svg(url: str) -> bytes:
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathFillImage, border=4,
                        box_size=10)
    return image.to_string()  # type: ignore[no-any-return]


def _phone_url(qr_id: str) -> str:
    return f"{current_app.config['ISSUER']}/qr/s/{qr_id}"


# The desktop.


@bp.get("/qr/login")
def desktop() -> Response:
    flow_id = request.args.get("flow") or None
    pending = flow_web.get(flow_id)
    if flow_id and pending is None:
        return flow_web.expired_page()
    return _desktop_page(pending)


def _desktop_page(pending: flow_web.Pending | None, error: str | None = None,
                  status: int = 200) -> Response:
    if pending is not None and (uri := pending.params.get("redirect_uri")):
        allow_form_action(uri)  # the completed sign-in is redirected on to the app
    html = render_template(
        "qrlogin/desktop.html", flow=pending.flow_id if pending else "",
        client_name=pending.client_name if pending else None,
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
    flow_id = request.form.get("flow") or None
    pending = flow_web.get(flow_id)
    if flow_id and pending is None:
        return _json_error(400, "invalid_flow", _(
            "This sign-in request has expired. Go back to the app and try again."))
    try:
        created = service.start(
            qr_store(), client_id=pending.params.get("client_id", "") if pending else "",
            client_name=pending.client_name if pending else "",
            acr_values=pending.params.get("acr_values", "") if pending else "",
            desktop=origin(),
        )
    except Unavailable:
        return _json_error(503, "unavailable", _unavailable_message())
    db.session.commit()
    qr = created.session
    response = jsonify(
        id=qr.id, expires_in=config["QR_TTL"], number=qr.number,
        image_url=url_for("qrlogin.image", qr_id=qr.id),
        events_url=url_for("qrlogin.events", qr_id=qr.id),
        poll_url=url_for("qrlogin.poll", qr_id=qr.id),
        complete_url=url_for("qrlogin.complete", qr_id=qr.id),
    )
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    # The desktop's proof, never in the QR: HttpOnly, only sent to this session's own paths.
    response.set_cookie(DESKTOP_COOKIE, created.secret, max_age=config["QR_TTL"],
                        path=f"/qr/sessions/{qr.id}", secure=config["SESSION_COOKIE_SECURE"],
                        httponly=True, samesite="Strict")
    return response


def _json_error(status: int, error: str, message: str, **extra: Any) -> Response:
    response = jsonify(error=error, message=message, **extra)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _desktop_owns(qr_id: str) -> bool:
    return qr_store().owns(qr_id, request.cookies.get(DESKTOP_COOKIE))


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
    flow_id = request.form.get("flow") or None
    pending = flow_web.get(flow_id)
    if not ratelimit.allow("qr-complete-ip", request.remote_addr or "-",
                           current_app.config["RATE_LIMIT_QR_CREATE_IP"]):
        return _desktop_page(pending, _("Please wait a moment and try again."), 429)
    secret = request.cookies.get(DESKTOP_COOKIE, "")
    try:
        outcome, user, amr = service.consume(qr_store(), qr_id, secret, origin())
    except Unavailable:
        return _desktop_page(pending, _unavailable_message(), 503)
    if not outcome.ok or user is None:
        db.session.commit()
        if outcome.result == WRONG_SECRET:
            message = _("This code belongs to another browser. Make a new code.")
        elif outcome.result in (PENDING, SCANNED):
            message = _("This sign-in has not been approved on the phone yet.")
        elif outcome.result == DENIED:
            message = _("This sign-in was cancelled.")
        else:
            message = _("This code has expired or was already used. Make a new code.")
        return _desktop_page(pending, message, 409 if outcome.result != MISSING else 404)
    response = flow_web.complete_sign_in(user, amr, pending.flow_id if pending else None)
    response.delete_cookie(DESKTOP_COOKIE, path=f"/qr/sessions/{qr_id}",
                           secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True,
                           samesite="Strict")
    return response


# The phone, in its browser.


def _load(qr_id: str) -> QRSession | Response:
    if not ID_PATTERN.match(qr_id):
        return _outcome_page(Outcome(MISSING))
    try:
        qr = qr_store().get(qr_id)
    except Unavailable:
        return _message(_("Unavailable"), _unavailable_message(), 503)
    return qr if qr is not None else _outcome_page(Outcome(MISSING))


def _sign_in_first(qr: QRSession) -> Response:
    """Send the phone to the sign-in page; it comes back to the code afterwards."""
    pending = flow_web.start({"qr": qr.id}, PHONE_RESUME, qr.client_name)
    return redirect(url_for("auth.login", flow=pending.flow_id))  # type: ignore[return-value]


def _phone_checks(qr: QRSession) -> tuple[SSOSession | None, Response | None]:
    session = flow_web.current_session()
    if session is None:
        return None, _sign_in_first(qr)
    step = service.check_phone(qr, session, utcnow(), int(current_app.config["QR_PHONE_MAX_AGE"]))
    if step is None:
        return session, None
    if step.interaction is None:
        return None, _sign_in_first(qr)
    target = url_for(step.interaction.endpoint, next=f"/qr/s/{qr.id}", **step.interaction.args)
    return None, redirect(target)  # type: ignore[return-value]


def _approving_phone(qr_id: str) -> SSOSession | Response:
    """The phone's SSO session, if it may scan or approve this code now; else the page that
    answers instead (unknown code, sign in first, step up)."""
    loaded = _load(qr_id)
    if isinstance(loaded, Response):
        return loaded
    session, redirect_response = _phone_checks(loaded)
    if redirect_response is not None:
        return redirect_response
    assert session is not None  # noqa: S101
    return session


def _committed(transition: Callable[[], Outcome]) -> Outcome | Response:
    """Run a phone-side transition and commit its audit rows; with Redis down, the 503 page
    and nothing recorded."""
    try:
        outcome = transition()
    except Unavailable:
        db.session.rollback()
        return _message(_("Unavailable"), _unavailable_message(), 503)
    db.session.commit()
    return outcome


@bp.get("/qr/s/<qr_id>")
def phone(qr_id: str) -> Response:
    """Opened by scanning: mark the code scanned and ask the user to confirm."""
    session = _approving_phone(qr_id)
    if isinstance(session, Response):
        return session
    outcome = _committed(lambda: service.scan(qr_store(), qr_id, session.user, origin()))
    if isinstance(outcome, Response):
        return outcome
    if not outcome.ok or outcome.session is None:
        return _outcome_page(outcome)
    return _confirm_page(outcome.session, session.user)


def _confirm_page(qr: QRSession, user: User) -> Response:
    browser, system = describe(qr.desktop_ua)
    html = render_template(
        "qrlogin/phone.html", qr=qr, user=user, browser=browser, system=system,
        seconds=max(int(time.time() - qr.created_at), 0),
        app_name=qr.client_name or _("Company sign-in"),
    )
    return Response(html, mimetype="text/html")


@bp.get("/qr/phone/resume")
def phone_resume() -> Response:
    pending = flow_web.get(request.args.get("flow"))
    qr_id = pending.params.get("qr", "") if pending else ""
    if pending is None or not ID_PATTERN.match(qr_id):
        return flow_web.expired_page()
    flow_web.finish(pending.flow_id)
    return redirect(url_for("qrlogin.phone", qr_id=qr_id))  # type: ignore[return-value]


@bp.post("/qr/s/<qr_id>/approve")
def phone_approve(qr_id: str) -> Response:
    session = _approving_phone(qr_id)
    if isinstance(session, Response):
        return session
    number = parse_json_number(request.form.get("number"))
    outcome = _committed(lambda: service.approve(qr_store(), qr_id, session.user, session,
                                                 number, origin()))
    if isinstance(outcome, Response):
        return outcome
    if not outcome.ok:
        return _outcome_page(outcome)
    return _message(_("Approved"), _("You are being signed in on your computer."), 200)


@bp.post("/qr/s/<qr_id>/deny")
def phone_deny(qr_id: str) -> Response:
    loaded = _load(qr_id)
    if isinstance(loaded, Response):
        return loaded
    session = flow_web.current_session()
    if session is None:
        return _sign_in_first(loaded)
    outcome = _committed(lambda: service.deny(qr_store(), qr_id, session.user, origin()))
    if isinstance(outcome, Response):
        return outcome
    if not outcome.ok:
        return _outcome_page(outcome)
    return _message(_("Sign-in cancelled"), _("Nobody was signed in on the computer."), 200)


# The phone, as a native app with a bearer token (see openapi.json).


def _api_error(status: int, error: str, description: str, **extra: Any) -> Response:
    response = jsonify(error=error, error_description=description, **extra)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _bearer_error(status: int, error: str, description: str) -> Response:
    """An RFC 6750 §3 error: the JSON body plus its ``WWW-Authenticate`` challenge."""
    response = _api_error(status, error, description)
    if status in (401, 403):
        challenge = f'Bearer realm="{current_app.config["ISSUER"]}", error="{error}"'
        if error == "insufficient_scope":
            challenge += f', scope="{service.QR_SCOPE}"'
        response.headers["WWW-Authenticate"] = challenge
    return response


def _api_caller() -> tuple[User, SSOSession] | Response:
    """The user and live SSO session behind the bearer token (RFC 6750), or the error."""
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    if not header:
        # RFC 6750 §3.1: no credentials sent, so no error code; openapi.json documents this.
        response = Response(status=401, mimetype="text/plain")
        response.headers["WWW-Authenticate"] = f'Bearer realm="{current_app.config["ISSUER"]}"'
        return response
    if scheme.lower() != "bearer" or not token.strip():
        return _bearer_error(400, "invalid_request", "Send 'Authorization: Bearer <token>'.")
    try:
        info = current_app.extensions["sso_tokens"].validate_access_token(token.strip())
    except InvalidJWS:
        return _bearer_error(401, "invalid_token", "The access token is invalid or expired.")
    if service.QR_SCOPE not in info.scopes:
        return _bearer_error(403, "insufficient_scope", "The token lacks the qr.approve scope.")
    client = db.session.get(Client, info.client_id)
    if client is None or not client.is_public:
        return _bearer_error(403, "insufficient_scope",
                             "Only a registered mobile app (a public client) may approve.")
    user = db.session.scalar(db.select(User).where(User.subject == info.claims.get("sub")))
    sid = info.claims.get("sid")
    session = sessions.get(str(sid)) if sid else None
    if (user is None or user.status != "active" or session is None
            or session.user_id != user.id or not session.is_active(utcnow())):
        return _bearer_error(401, "invalid_token",
                             "The sign-in behind this token has ended. Sign in again.")
    return user, session


def _api_outcome(outcome: Outcome) -> Response:
    result = outcome.result
    if result == MISSING:
        return _api_error(404, "expired", "The code has expired or is not valid.")
    if result == OTHER_USER:
        return _api_error(403, "other_user", "The code was scanned by another account.")
    if result == WRONG_NUMBER:
        return _api_error(400, "wrong_number",
                           "The number does not match; the sign-in was cancelled.")
    if result == PENDING:
        return _api_error(409, "not_scanned", "Scan the code before approving it.")
    return _api_error(409, "conflict", "The code can no longer change.", state=result)


def _api_prelude(qr_id: str, check: bool) -> tuple[User, SSOSession, QRSession] | Response:
    """The caller, its session and the code; with ``check``, also the phone policy (a user
    may always cancel, so ``deny`` skips it)."""
    caller = _api_caller()
    if isinstance(caller, Response):
        return caller
    user, session = caller
    if not ID_PATTERN.match(qr_id):
        return _api_outcome(Outcome(MISSING))
    try:
        qr = qr_store().get(qr_id)
    except Unavailable:
        return _api_error(503, "unavailable", "Scan to sign in is unavailable.")
    if qr is None:
        return _api_outcome(Outcome(MISSING))
    if not check:
        return user, session, qr
    step = service.check_phone(qr, session, utcnow(), int(current_app.config["QR_PHONE_MAX_AGE"]))
    if step is not None:
        audit.record_now("qr.step_up", audit.FAILURE, origin=origin(), user_id=user.id,
                         client_id=qr.client_id or None, reason=step.reason)
        if step.interaction is None:
            return _api_error(403, "login_required",
                               "The sign-in on this phone is too old. Sign in again.")
        uri = url_for(step.interaction.endpoint, next=f"/qr/s/{qr.id}", _external=True,
                      **step.interaction.args)
        return _api_error(403, "step_up_required",
                           "This app needs a second factor on the phone first.", step_up_uri=uri)
    return user, session, qr


def _api_context(qr: QRSession) -> dict[str, Any]:
    browser, system = describe(qr.desktop_ua)
    return {
        "id": qr.id, "state": qr.state,
        "app": {"client_id": qr.client_id or None, "name": qr.client_name or None},
        "desktop": {"browser": browser, "os": system, "ip": qr.desktop_ip,
                    "requested_at": int(qr.created_at),
                    "age_seconds": max(int(time.time() - qr.created_at), 0)},
        "number_choices": list(qr.choices) or None,
        "expires_in": max(int(qr.expires_at - time.time()), 0),
    }


def _api_transition(qr_id: str, action: str) -> Response:
    prelude = _api_prelude(qr_id, check=action != "deny")
    if isinstance(prelude, Response):
        return prelude
    user, session, _qr = prelude
    store = qr_store()
    try:
        if action == "scan":
            outcome = service.scan(store, qr_id, user, origin())
        elif action == "approve":
            body = request.get_json(silent=True) if request.data else {}
            if body is None or not isinstance(body, dict):
                return _api_error(400, "invalid_request", "The body must be a JSON object.")
            outcome = service.approve(store, qr_id, user, session,
                                      parse_json_number(body), origin())
        else:
            outcome = service.deny(store, qr_id, user, origin())
    except Unavailable:
        db.session.rollback()
        return _api_error(503, "unavailable", "Scan to sign in is unavailable.")
    db.session.commit()
    if not outcome.ok or outcome.session is None:
        return _api_outcome(outcome)
    response = jsonify(_api_context(outcome.session))
    response.headers["Cache-Control"] = "no-store"
    return response


@api.post("/api/qr/<qr_id>/scan")
@csrf_exempt
def api_scan(qr_id: str) -> Response:
    return _api_transition(qr_id, "scan")


@api.post("/api/qr/<qr_id>/approve")
@csrf_exempt
def api_approve(qr_id: str) -> Response:
    return _api_transition(qr_id, "approve")


@api.post("/api/qr/<qr_id>/deny")
@csrf_exempt
def api_deny(qr_id: str) -> Response:
    return _api_transition(qr_id, "deny")


@api.get("/api/qr/openapi.json")
def openapi() -> Response:
    document = json.loads(OPENAPI.read_text())
    document["servers"] = [{"url": current_app.config["ISSUER"]}]
    return jsonify(document)


