"""Scan to sign in, the phone as a native app: JSON endpoints behind a bearer access token
with the ``qr.approve`` scope, issued to a public (mobile) client (see openapi.json)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for
from werkzeug.wrappers import Response

from .. import audit, ratelimit
from ..dbtypes import utcnow
from ..extensions import db
from ..oidc.public import BearerError
from ..oidc.public import get as get_client
from ..oidc.public import require as require_token
from ..sessions import service as sessions
from ..sessions.models import SSOSession
from ..users.models import User
from ..web import csrf_exempt, origin
from . import qr_store, service
from .proximity import parse_networks
from .store import (
    BLOCKED,
    FAR_REFUSED,
    ID_PATTERN,
    MISSING,
    OTHER_USER,
    PENDING,
    WRONG_NUMBER,
    Outcome,
    QRSession,
    Unavailable,
    parse_json_number,
)
from .useragent import describe

api = Blueprint("qrlogin_api", __name__)

OPENAPI = Path(__file__).with_name("openapi.json")


def _api_error(status: int, error: str, description: str, **extra: Any) -> Response:
    response = jsonify(error=error, error_description=description, **extra)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _api_caller() -> tuple[User, SSOSession]:
    """The user and live SSO session behind the bearer token (RFC 6750); or BearerError."""
    info = require_token(service.QR_SCOPE)
    client = get_client(info.client_id)
    if client is None or not client.is_public:
        raise BearerError(403, "insufficient_scope",
                          "Only a registered mobile app (a public client) may approve.",
                          service.QR_SCOPE)
    user = info.user
    sid = info.claims.get("sid")
    session = sessions.get(str(sid)) if sid else None
    if (user is None or session is None or session.user_id != user.id
            or not session.is_active(utcnow())):
        raise BearerError(401, "invalid_token",
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
    if result == FAR_REFUSED:
        return _api_error(403, "far_refused",
                          "This app refuses approvals from a phone on another network.")
    if result == BLOCKED:
        return _api_error(403, "blocked", "QR approvals of this user are paused after a report.")
    if result == PENDING:
        return _api_error(409, "not_scanned", "Scan the code before approving it.")
    return _api_error(409, "conflict", "The code can no longer change.", state=result)


def _api_prelude(qr_id: str, check: bool) -> tuple[User, SSOSession, QRSession] | Response:
    """The caller, its session and the code; with ``check``, also the phone policy (a user
    may always cancel, so ``deny`` skips it)."""
    user, session = _api_caller()
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
    config = current_app.config
    step = service.check_phone(qr, session, utcnow(), int(config["QR_PHONE_MAX_AGE"]),
                               int(config["QR_FACTOR_FRESHNESS"]))
    if step is not None:
        audit.record_now("qr.step_up", audit.FAILURE, origin=origin(), user_id=user.id,
                         client_id=qr.client_id or None, reason=step.reason)
        if step.interaction is None:
            return _api_error(403, "login_required",
                               "The sign-in on this phone is too old. Sign in again.")
        uri = url_for(step.interaction.endpoint,
                      next=url_for("qrlogin_phone.phone", qr_id=qr.id), _external=True,
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
        "proximity": {"far": qr.far, "desktop_network": qr.desktop_network or None,
                      "phone_network": qr.phone_network or None},
        "expires_in": max(int(qr.expires_at - time.time()), 0),
    }


def _api_transition(qr_id: str, action: str) -> Response:
    prelude = _api_prelude(qr_id, check=action not in ("deny", "report"))
    if isinstance(prelude, Response):
        return prelude
    user, session, _qr = prelude
    store = qr_store()
    try:
        if action == "scan":
            outcome = service.scan(store, qr_id, user, origin(), parse_networks(
                current_app.config["QR_TRUSTED_NETWORKS"]))
        elif action == "approve":
            body = request.get_json(silent=True) if request.data else {}
            if body is None or not isinstance(body, dict):
                return _api_error(400, "invalid_request", "The body must be a JSON object.")
            if not ratelimit.allow("qr-approve-user", str(user.id),
                                   current_app.config["RATE_LIMIT_QR_APPROVE_USER"]):
                return _api_error(429, "slow_down", "Too many approvals; wait a moment.")
            outcome = service.approve(
                store, qr_id, user, session, parse_json_number(body), origin(), now=utcnow(),
                freshness=int(current_app.config["QR_FACTOR_FRESHNESS"]))
        elif action == "report":
            config = current_app.config
            outcome = service.report(
                store, qr_id, user, origin(), block_seconds=int(config["QR_BLOCK_AFTER_REPORT"]),
                issuer=config["ISSUER"], keys=current_app.extensions["sso_keys"], now=utcnow())
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


@api.post("/api/qr/<qr_id>/report")
@csrf_exempt
def api_report(qr_id: str) -> Response:
    """"This wasn't me" from the native app: as the web page's third choice."""
    return _api_transition(qr_id, "report")


@api.get("/api/qr/openapi.json")
def openapi() -> Response:
    document = json.loads(OPENAPI.read_text())
    document["servers"] = [{"url": current_app.config["ISSUER"]}]
    return jsonify(document)


