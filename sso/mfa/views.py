"""Two-step verification pages: verify a code, enrol an authenticator, manage it.

The verify and enrol pages serve a pending sign-in (``?flow=``) or, for a phone approving a
QR sign-in, a same-origin path to return to (``?next=``); without either they return to the
account page.
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from .. import audit, ratelimit
from ..accounts import lockout
from ..accounts import service as accounts
from ..dbtypes import utcnow
from ..extensions import db
from ..flow import passage
from ..flow.pending import Target, target_from_request
from ..i18n import gettext as _
from ..sessions.models import Proof, SSOSession
from ..users.models import User
from ..web import origin
from . import policy, service

bp = Blueprint("mfa", __name__, url_prefix="/mfa")

DEVICE_COOKIE = "sso_mfa_device"


def _page(template: str, status: int = 200, **context: object) -> Response:
    return Response(render_template(template, **context), status=status, mimetype="text/html")


def device_cookie_name() -> str:
    secure = current_app.config["SESSION_COOKIE_SECURE"]
    return f"__Host-{DEVICE_COOKIE}" if secure else DEVICE_COOKIE


def _signed_in() -> User | None:
    sso_session = passage.current_session()
    return sso_session.user if sso_session else None


def _to_login(target: Target) -> Response:
    return redirect(url_for("auth.login", **target.query()))  # type: ignore[return-value]


def _target_and_session() -> tuple[Target, SSOSession] | Response:
    """Where to go afterwards, and the SSO session the second factor is for (or the page that
    answers instead: an expired flow, a bad ``next``, the sign-in page)."""
    target = target_from_request()
    if isinstance(target, Response):
        return target
    sso_session = passage.current_session()
    if sso_session is None:
        return _to_login(target)
    return target, sso_session


CODE_ERRORS = {
    "malformed": "Enter the 6-digit code from your authenticator app, or a recovery code.",
    "wrong": "That code is not correct. Check your device's clock and try again.",
    "replayed": "That code has already been used. Wait for the next code.",
    "used": "That recovery code has already been used.",
    "locked": "Too many failed attempts. Try again later.",
    "not_enrolled": "Two-step verification is not set up for this account.",
}


def _code_error(reason: str) -> str:
    return _(CODE_ERRORS.get(reason, CODE_ERRORS["wrong"]))


def _limited(user: User) -> bool:
    config = current_app.config
    return not (
        ratelimit.allow("mfa-ip", request.remote_addr or "-", config["RATE_LIMIT_MFA_IP"])
        and ratelimit.allow("mfa-user", str(user.id), config["RATE_LIMIT_MFA_USER"])
    )


# Verify.


def _verify_page(target: Target, user: User, error: str | None = None,
                 status: int = 200) -> Response:
    remember = request.values.get("remember") == "1"
    return _page("mfa/verify.html", status=status, target=target, user=user, error=error,
                 remember=remember, remember_days=current_app.config["MFA_REMEMBER_DAYS"])


@bp.get("/verify")
def verify() -> Response:
    found = _target_and_session()
    if isinstance(found, Response):
        return found
    target, sso_session = found
    user = sso_session.user
    if not service.is_enrolled(user.id):
        return redirect(url_for("mfa.enrol", **target.query()))  # type: ignore[return-value]
    if request.args.get("remember") == "1":
        now = utcnow()
        device = service.device_from_cookie(
            user, request.cookies.get(device_cookie_name()), now,
            current_app.config["MFA_REMEMBER_DAYS"],
        )
        if device is not None:
            # The flow step decides again whether a remembered device suffices here.
            device.last_used_at = now
            audit.record("mfa.verify", origin=origin(), user_id=user.id, method="device",
                         session_id=sso_session.id, device_id=device.id)
            return passage.finish(target, door="remembered-device", user=user,
                                  proofs=[Proof("device", now)])
    return _verify_page(target, user)


@bp.post("/verify")
def verify_submit() -> Response:
    found = _target_and_session()
    if isinstance(found, Response):
        return found
    target, sso_session = found
    user = sso_session.user
    if _limited(user):
        return _verify_page(target, user, _("Too many attempts. Please wait a few minutes."),
                            status=429)
    now = utcnow()
    try:
        method = service.verify(user, request.form.get("code", ""), origin=origin(), now=now)
    except service.CodeError as error:
        db.session.commit()
        return _verify_page(target, user, _code_error(error.reason))
    cookie = None
    days = current_app.config["MFA_REMEMBER_DAYS"]
    if request.form.get("remember") == "1" and request.form.get("remember_device") and days > 0:
        _device, cookie = service.remember_device(user, origin=origin(), now=now, days=days)
    response = passage.finish(target, door="recovery-code" if method == "recovery" else "totp",
                              user=user, proofs=[Proof(method, now)])
    if cookie:
        response.set_cookie(
            device_cookie_name(), cookie, max_age=days * 24 * 3600, path="/",
            secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True, samesite="Lax",
        )
    return response


# Enrol.


def _enrol_page(target: Target, user: User, enrolment: service.Enrolment,
                error: str | None = None, status: int = 200) -> Response:
    return _page("mfa/enrol.html", status=status, target=target, user=user,
                 enrolment=enrolment, error=error)


@bp.get("/enrol")
def enrol() -> Response:
    target = target_from_request()
    if isinstance(target, Response):
        return target
    user = _signed_in()
    if user is None:
        return _to_login(target)
    if service.is_enrolled(user.id):
        return _page("mfa/done.html", title=_("Two-step verification is already on"),
                     message=_("Your account already has an authenticator app."),
                     continue_url=target.url())
    return _enrol_page(target, user, service.begin_enrolment(user))


@bp.post("/enrol")
def enrol_submit() -> Response:
    found = _target_and_session()
    if isinstance(found, Response):
        return found
    target, sso_session = found
    user = sso_session.user
    enrolment_id = request.form.get("enrolment", "")
    enrolment = service.pending_enrolment(user, enrolment_id)
    if _limited(user):
        if enrolment is None:
            enrolment = service.begin_enrolment(user)
        return _enrol_page(target, user, enrolment,
                           _("Too many attempts. Please wait a few minutes."), status=429)
    now = utcnow()
    try:
        codes = service.confirm_enrolment(user, enrolment_id, request.form.get("code", ""),
                                          origin=origin(), now=now)
    except service.EnrolmentError as error:
        db.session.commit()
        if error.reason == "already":
            return _page("mfa/done.html", status=409,
                         title=_("Two-step verification is already on"),
                         message=_("Another setup of two-step verification finished first. "
                                   "Use the authenticator you set up there."),
                         continue_url=target.url())
        return _enrol_page(target, user, service.begin_enrolment(user),
                           _("This setup has expired. Scan the new code."))
    except service.CodeError as error:
        db.session.commit()
        assert enrolment is not None  # noqa: S101 - confirm_enrolment checked it
        message = (_("That code is not correct. Scan the code again and enter the code "
                     "your app shows now.") if error.reason == "wrong"
                   else _code_error(error.reason))
        return _enrol_page(target, user, enrolment, message)
    done = passage.finish(target, door="mfa-enrol", user=user, proofs=[Proof("otp", now)])
    page = _page("mfa/recovery_codes.html", codes=codes, continue_url=done.headers["Location"],
                 enrolled=True)
    for cookie in done.headers.getlist("Set-Cookie"):
        page.headers.add("Set-Cookie", cookie)
    return page


# Management from the account page.


def _account_user() -> User | Response:
    user = _signed_in()
    if user is None:
        return redirect(url_for("auth.login"))  # type: ignore[return-value]
    return user


def _back_to_account(notice: str) -> Response:
    return redirect(url_for("auth.account", mfa=notice))  # type: ignore[return-value]


@bp.post("/recovery-codes")
def regenerate() -> Response:
    user = _account_user()
    if isinstance(user, Response):
        return user
    if _limited(user):
        return _back_to_account("limited")
    now = utcnow()
    try:
        service.verify(user, request.form.get("code", ""), origin=origin(), now=now)
    except service.CodeError as error:
        db.session.commit()
        return _back_to_account(f"code-{error.reason}")
    codes = service.regenerate_recovery_codes(user, origin=origin(), now=now)
    db.session.commit()
    return _page("mfa/recovery_codes.html", codes=codes, continue_url=url_for("auth.account"),
                 enrolled=False)


@bp.post("/remove")
def remove() -> Response:
    user = _account_user()
    if isinstance(user, Response):
        return user
    if _limited(user):
        return _back_to_account("limited")
    password = request.form.get("password", "")[:1024]
    if lockout.locked_for(user.id):
        audit.record("mfa.remove", audit.FAILURE, origin=origin(), user_id=user.id,
                     reason="locked")
        db.session.commit()
        return _back_to_account("code-locked")
    if not accounts.passwords().verify(user.password_hash, password):
        audit.record("mfa.remove", audit.FAILURE, origin=origin(), user_id=user.id,
                     reason="password")
        lockout.register_failure(user.id, origin())  # every password check counts
        db.session.commit()
        return _back_to_account("password")
    try:
        service.verify(user, request.form.get("code", ""), origin=origin(), now=utcnow())
    except service.CodeError as error:
        db.session.commit()
        return _back_to_account(f"code-{error.reason}")
    service.remove(user, origin=origin())
    db.session.commit()
    response = _back_to_account("removed")
    response.delete_cookie(device_cookie_name(), path="/",
                           secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True,
                           samesite="Lax")
    return response


@bp.post("/devices/revoke")
def revoke_device() -> Response:
    user = _account_user()
    if isinstance(user, Response):
        return user
    revoked = service.revoke_device(user, request.form.get("device", ""), origin=origin(),
                                    now=utcnow())
    db.session.commit()
    return _back_to_account("device-revoked" if revoked else "device-unknown")


ACCOUNT_NOTICES = {
    "removed": "Two-step verification is off.",
    "device-revoked": "That device will be asked for a code again.",
    "device-unknown": "That device was not found.",
    "password": "Incorrect password.",
    "limited": "Too many attempts. Please wait a few minutes.",
}


def account_context(user: User) -> dict[str, object]:
    """What ``templates/mfa/account.html`` (included in the account page) shows."""
    notice = request.args.get("mfa", "")
    if notice.startswith("code-"):
        message = _code_error(notice[5:])
    else:
        message = _(ACCOUNT_NOTICES[notice]) if notice in ACCOUNT_NOTICES else None
    return {
        **policy.status(user),
        "devices": service.devices(user.id, utcnow()),
        "notice": message,
        "notice_is_error": notice not in ("removed", "device-revoked", ""),
    }
