"""CIBA on the phone channel: the signed-in phone (web page or native app) lists the
backchannel requests waiting for its user and approves or denies them on the same kind of
confirmation screen as a scanned code (Cancel first, *This wasn't me*). The protocol side is
in ``sso.oidc.ciba``; this package reaches it through ``sso.oidc.public`` only."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from .. import notify, ratelimit
from ..dbtypes import utcnow
from ..extensions import db
from ..flow import passage
from ..i18n import gettext as _
from ..oidc.public import BearerError, ciba_requests, decide_ciba, get_ciba_request
from ..sessions.models import Proof, SSOSession, amr_of
from ..web import csrf_exempt
from . import qr_store, service
from .pages import message, outcome_page
from .store import BLOCKED, Outcome

bp = Blueprint("qrlogin_ciba", __name__)


def _amr(session: SSOSession) -> list[str]:
    now = utcnow()
    fresh = service.fresh_factors(session, now, int(current_app.config["QR_FACTOR_FRESHNESS"]))
    return amr_of([Proof(service.AMR_QR, now), *fresh])


def _decide(session: SSOSession, ref: str, action: str) -> str:
    config = current_app.config
    if action != "deny" and not ratelimit.allow(
            "qr-approve-user", str(session.user_id), config["RATE_LIMIT_QR_APPROVE_USER"]):
        return "slow_down"
    store = qr_store()
    if action == "approve" and store.blocked_for(session.user_id):
        return BLOCKED
    pending = get_ciba_request(session.user_id, ref)
    result = decide_ciba(session.user_id, ref, action == "approve", amr=_amr(session),
                         auth_time=utcnow(), session_id=session.id, alarm=action == "report")
    if action == "report" and result == "ok":
        # As for a scanned code: pause the user's approvals, mail them, tell the apps.
        seconds = int(config["QR_BLOCK_AFTER_REPORT"])
        store.block(session.user_id, seconds)
        user = session.user
        if user.email:
            notify.mail(user.email, "qr_reported", locale=user.locale, purpose="qr-report",
                        user_id=user.id, user=user, qr=None, minutes=seconds // 60,
                        app_name=pending.client_name if pending else "")
        service.tell_apps(user, None, issuer=config["ISSUER"],
                          keys=current_app.extensions["sso_keys"], now=utcnow())
    db.session.commit()
    return result


def _signed_in() -> SSOSession | Response:
    session = passage.current_session()
    if session is None:
        return redirect(url_for("auth.login", next=request.path))  # type: ignore[return-value]
    return session


@bp.get("/qr/requests")
def requests_page() -> Response:
    """The requests waiting for this phone's user; the page reloads itself to stay live."""
    session = _signed_in()
    if isinstance(session, Response):
        return session
    html = render_template("qrlogin/ciba_list.html", requests=ciba_requests(session.user_id),
                           user=session.user)
    return Response(html, mimetype="text/html")


@bp.get("/qr/requests/<ref>")
def request_page(ref: str) -> Response:
    session = _signed_in()
    if isinstance(session, Response):
        return session
    pending = get_ciba_request(session.user_id, ref)
    if pending is None:
        return message(_("This request has expired"), _(
            "This sign-in request has expired or was already answered."), 404)
    html = render_template("qrlogin/ciba_confirm.html", req=pending, user=session.user,
                           seconds=max(int(time.time() - pending.created_at), 0))
    return Response(html, mimetype="text/html")


@bp.post("/qr/requests/<ref>/<action>")
def request_decide(ref: str, action: str) -> Response:
    if action not in ("approve", "deny", "report"):
        return message(_("This request has expired"), _(
            "This sign-in request has expired or was already answered."), 404)
    session = _signed_in()
    if isinstance(session, Response):
        return session
    result = _decide(session, ref, action)
    if result == "slow_down":
        return message(_("Please wait"), _("Please wait a moment and try again."), 429)
    if result == BLOCKED:
        return outcome_page(Outcome(BLOCKED))
    if result != "ok":
        return message(_("This request has expired"), _(
            "This sign-in request has expired or was already answered."), 409)
    if action == "approve":
        return message(_("Approved"), _("The app that asked is signing you in."), 200)
    return message(_("Sign-in cancelled"), _("Nobody was signed in."), 200)


# The native app.

def _api_session() -> SSOSession:
    from .api import _api_caller  # noqa: PLC0415

    _user, session = _api_caller()
    return session


def _json(body: Any, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _as_json(pending: Any) -> dict[str, Any]:
    return {"id": pending.id, "app": {"client_id": pending.client_id,
                                      "name": pending.client_name},
            "binding_message": pending.binding_message or None, "scope": pending.scope,
            "expires_in": max(int(pending.expires_at - time.time()), 0)}


@bp.get("/api/ciba/requests")
def api_requests() -> Response:
    try:
        session = _api_session()
    except BearerError as error:
        return error.response()  # type: ignore[no-any-return]
    return _json({"requests": [_as_json(p) for p in ciba_requests(session.user_id)]})


@bp.post("/api/ciba/requests/<ref>/<action>")
@csrf_exempt
def api_decide(ref: str, action: str) -> Response:
    try:
        session = _api_session()
    except BearerError as error:
        return error.response()  # type: ignore[no-any-return]
    if action not in ("approve", "deny", "report"):
        return _json({"error": "invalid_request", "error_description": "Unknown action."}, 404)
    result = _decide(session, ref, action)
    if result == "slow_down":
        return _json({"error": "slow_down", "error_description": "Too many approvals."}, 429)
    if result == BLOCKED:
        return _json({"error": "blocked", "error_description":
                      "Approvals of this user are paused after a report."}, 403)
    if result != "ok":
        return _json({"error": "expired", "error_description":
                      "The request has expired or was already answered."}, 409)
    return _json({"id": ref, "state": "approved" if action == "approve" else "denied"})
