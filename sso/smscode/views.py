"""The pages: ask for a code, then type it; success leaves through ``passage.finish``."""

from __future__ import annotations

import hashlib

import redis
from flask import Blueprint, current_app, render_template, request
from werkzeug.wrappers import Response

from .. import audit, notify, ratelimit
from ..dbtypes import utcnow
from ..extensions import db
from ..flow import passage
from ..flow.pending import Target, target_from_request
from ..i18n import gettext as _
from ..sessions.models import Proof
from ..users import service as users
from ..web import origin
from . import service

bp = Blueprint("smscode", __name__, template_folder="templates")

#: The SMS template (``templates/sms/sign_in_code.txt`` in this package; for template-based
#: gateways the id of the approved template in ``SSO_TENCENT_SMS_TEMPLATES``).
SMS_TEMPLATE = "sign_in_code"


def _page(template: str, target: Target, status: int = 200, **context: object) -> Response:
    html = render_template(template, flow=target.flow_id or "", next=target.next or "",
                           target_query=target.query(), client_name=target.client_name,
                           **context)
    return Response(html, status=status, mimetype="text/html")


def _unavailable(target: Target, login: str = "") -> Response:
    return _page("smscode/start.html", target, status=503, login=login,
                 error=_("Signing in with a code is not available right now. Please sign in "
                         "with your password."))


def _login_bucket(login: str) -> str:
    return hashlib.sha256(login.strip().lower().encode()).hexdigest()[:32]


@bp.get("/login/sms")
def start() -> Response:
    target = target_from_request()
    if isinstance(target, Response):
        return target
    login = target.pending.params.get("login_hint", "") if target.pending else ""
    return _page("smscode/start.html", target, login=login[:254])


@bp.post("/login/sms")
def send() -> Response:
    target = target_from_request()
    if isinstance(target, Response):
        return target
    login = request.form.get("login", "").strip()[:254]
    if not login:
        return _page("smscode/start.html", target, status=400, login=login,
                     error=_("Enter your username, email or mobile number."))
    config = current_app.config
    # Counted for any name, known or not, so the limit reveals nothing either.
    if not (ratelimit.allow("smscode-send-ip", request.remote_addr or "-",
                            config["SMS_SIGN_IN_RATE_IP"])
            and ratelimit.allow("smscode-send-login", _login_bucket(login),
                                config["SMS_SIGN_IN_RATE_LOGIN"])):
        audit.record_now("signin.sms_code.sent", audit.FAILURE, origin=origin(),
                         subject=login, reason="rate_limited")
        return _page("smscode/start.html", target, status=429, login=login,
                     error=_("Too many codes asked for. Please wait a few minutes."))
    user = service.find_user(login)
    try:
        attempt, code = service.start(user)
    except redis.RedisError:
        return _unavailable(target, login)
    if user is not None and code is not None:
        notify.sms(user.phone or "", SMS_TEMPLATE, locale=user.locale, user_id=user.id,
                   params={"code": code, "minutes": str(service.TTL // 60)})
    # The same page for every name: whether it matched is only in the audit log.
    audit.record("signin.sms_code.sent", audit.SUCCESS if user else audit.FAILURE,
                 origin=origin(), user_id=user.id if user else None, subject=login,
                 **({} if user else {"reason": "no_match"}))
    db.session.commit()
    return _page("smscode/code.html", target, attempt=attempt, sent=True)


@bp.post("/login/sms/verify")
def verify() -> Response:
    target = target_from_request()
    if isinstance(target, Response):
        return target
    attempt = request.form.get("attempt", "")[:64]
    code = request.form.get("code", "")[:32]
    if not ratelimit.allow("smscode-verify-ip", request.remote_addr or "-",
                           current_app.config["SMS_SIGN_IN_RATE_VERIFY_IP"]):
        return _page("smscode/code.html", target, status=429, attempt=attempt,
                     error=_("Too many attempts. Please wait a few minutes."))
    try:
        result = service.check(attempt, code)
    except redis.RedisError:
        return _unavailable(target)
    user = users.get(result.user_id) if result.outcome == service.OK and result.user_id else None
    if user is not None and service.find_user(user.username) is user:
        return passage.finish(target, door="sms-code", user=user,
                              proofs=[Proof("sms", utcnow())])
    audit.record_now("signin.sms_code", audit.FAILURE, origin=origin(),
                     user_id=result.user_id,
                     reason="not_eligible" if result.outcome == service.OK else result.outcome)
    if result.outcome == service.WRONG:
        return _page("smscode/code.html", target, status=400, attempt=attempt,
                     error=_("That code is not right. Tries left: %(left)s.",
                             left=result.tries_left))
    return _page("smscode/start.html", target, status=400,
                 error=_("This code has expired or has been used up. Ask for a new one."))
