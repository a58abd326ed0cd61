"""Scan to sign in, the phone's web pages: opened by scanning the code, they show what is
being signed in and let the signed-in user confirm or cancel."""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from .. import ratelimit
from ..dbtypes import utcnow
from ..extensions import db
from ..flow import passage
from ..i18n import gettext as _
from ..sessions.models import SSOSession
from ..users.models import User
from ..web import origin
from . import qr_store, service
from .pages import message, outcome_page, unavailable_message
from .proximity import parse_networks
from .store import ID_PATTERN, MISSING, Outcome, QRSession, Unavailable, parse_json_number
from .useragent import describe

bp = Blueprint("qrlogin_phone", __name__)


#: ``Sec-Fetch-Site`` values of a navigation that came from another site's page (a link in a
#: mail or chat, a sibling subdomain): a scan opens the page directly (``none``).
FOREIGN_SITES = frozenset({"cross-site", "same-site"})


def _came_from_elsewhere() -> Response | None:
    """Refuse a confirmation page reached from another site's link (RFC 10027, phishing by
    link): the code is meant to be scanned by the phone's camera, which opens it directly.
    Browsers send Fetch Metadata; clients without it (the native app, scripts) pass."""
    if request.headers.get("Sec-Fetch-Site", "").lower() not in FOREIGN_SITES:
        return None
    return message(_("Scan the code with your phone"), _(
        "This page opens only by scanning the code with your phone's camera or the app. "
        "If someone sent you this link, do not continue: nobody needs you to open it."), 403)


def _phone_path(qr_id: str) -> str:
    return url_for("qrlogin_phone.phone", qr_id=qr_id)


def _load(qr_id: str) -> QRSession | Response:
    if (refused := _came_from_elsewhere()) is not None:
        return refused
    if not ID_PATTERN.match(qr_id):
        return outcome_page(Outcome(MISSING))
    try:
        qr = qr_store().get(qr_id)
    except Unavailable:
        return message(_("Unavailable"), unavailable_message(), 503)
    return qr if qr is not None else outcome_page(Outcome(MISSING))


def _sign_in_first(qr: QRSession) -> Response:
    """Send the phone to the sign-in page; it comes back to the code afterwards."""
    return redirect(url_for("auth.login", next=_phone_path(qr.id)))  # type: ignore[return-value]


def _phone_checks(qr: QRSession) -> tuple[SSOSession | None, Response | None]:
    session = passage.current_session()
    if session is None:
        return None, _sign_in_first(qr)
    config = current_app.config
    step = service.check_phone(qr, session, utcnow(), int(config["QR_PHONE_MAX_AGE"]),
                               int(config["QR_FACTOR_FRESHNESS"]))
    if step is None:
        return session, None
    if step.interaction is None:
        return None, _sign_in_first(qr)
    target = url_for(step.interaction.endpoint, next=_phone_path(qr.id), **step.interaction.args)
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
        return message(_("Unavailable"), unavailable_message(), 503)
    db.session.commit()
    return outcome


@bp.get("/qr/s/<qr_id>")
def phone(qr_id: str) -> Response:
    """Opened by scanning: mark the code scanned and ask the user to confirm."""
    session = _approving_phone(qr_id)
    if isinstance(session, Response):
        return session
    trusted = parse_networks(current_app.config["QR_TRUSTED_NETWORKS"])
    outcome = _committed(lambda: service.scan(qr_store(), qr_id, session.user, origin(),
                                              trusted))
    if isinstance(outcome, Response):
        return outcome
    if not outcome.ok or outcome.session is None:
        return outcome_page(outcome)
    return _confirm_page(outcome.session, session.user)


def _confirm_page(qr: QRSession, user: User) -> Response:
    browser, system = describe(qr.desktop_ua)
    html = render_template(
        "qrlogin/phone.html", qr=qr, user=user, browser=browser, system=system,
        seconds=max(int(time.time() - qr.created_at), 0),
        app_name=qr.client_name or _("Company sign-in"),
    )
    return Response(html, mimetype="text/html")


@bp.post("/qr/s/<qr_id>/approve")
def phone_approve(qr_id: str) -> Response:
    session = _approving_phone(qr_id)
    if isinstance(session, Response):
        return session
    config = current_app.config
    if not ratelimit.allow("qr-approve-user", str(session.user_id),
                           config["RATE_LIMIT_QR_APPROVE_USER"]):
        return message(_("Please wait"), _("Please wait a moment and try again."), 429)
    number = parse_json_number(request.form.get("number"))
    outcome = _committed(lambda: service.approve(
        qr_store(), qr_id, session.user, session, number, origin(), now=utcnow(),
        freshness=int(config["QR_FACTOR_FRESHNESS"])))
    if isinstance(outcome, Response):
        return outcome
    if not outcome.ok:
        return outcome_page(outcome)
    return message(_("Approved"), _("You are being signed in on your computer."), 200)


@bp.post("/qr/s/<qr_id>/deny")
def phone_deny(qr_id: str) -> Response:
    loaded = _load(qr_id)
    if isinstance(loaded, Response):
        return loaded
    session = passage.current_session()
    if session is None:
        return _sign_in_first(loaded)
    outcome = _committed(lambda: service.deny(qr_store(), qr_id, session.user, origin()))
    if isinstance(outcome, Response):
        return outcome
    if not outcome.ok:
        return outcome_page(outcome)
    return message(_("Sign-in cancelled"), _("Nobody was signed in on the computer."), 200)


@bp.post("/qr/s/<qr_id>/report")
def phone_report(qr_id: str) -> Response:
    """"This wasn't me": cancel, alarm, pause this user's approvals, mail, tell the apps."""
    loaded = _load(qr_id)
    if isinstance(loaded, Response):
        return loaded
    session = passage.current_session()
    if session is None:
        return _sign_in_first(loaded)
    config = current_app.config
    outcome = _committed(lambda: service.report(
        qr_store(), qr_id, session.user, origin(),
        block_seconds=int(config["QR_BLOCK_AFTER_REPORT"]), issuer=config["ISSUER"],
        keys=current_app.extensions["sso_keys"], now=utcnow()))
    if isinstance(outcome, Response):
        return outcome
    if not outcome.ok:
        return outcome_page(outcome)
    return message(_("Thank you for reporting it"), _(
        "Nobody was signed in. Scan to sign in is paused for your account for a while, and "
        "we sent you an email about it. If someone sent you the code or a link, do not open "
        "it again."), 200)
