"""Two-step verification pages: verify a code, enrol an authenticator, manage it.

The verify and enrol pages serve a pending sign-in (``?flow=``) or, for a phone approving a
QR sign-in, a same-origin path to return to (``?next=``); without either they return to the
account page.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from .. import audit, ratelimit
from ..accounts import service as accounts
from ..dbtypes import utcnow
from ..extensions import db
from ..flow import web as flow_web
from ..i18n import gettext as _
from ..sessions.models import SSOSession
from ..users.models import User
from ..web import allow_form_action, origin
from . import policy, service

bp = Blueprint("mfa", __name__, url_prefix="/mfa")

DEVICE_COOKIE = "sso_mfa_device"


def safe_next(value: str | None) -> str | None:
    """``value`` if it is a path on this site (no scheme, host or protocol-relative form)."""
    if not value or len(value) > 2048 or not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or any(ord(c) < 0x20 for c in value):
        return None
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else None


@dataclass(frozen=True)
class Target:
    """Where the browser goes once the second factor is done."""

    flow_id: str | None = None
    next: str | None = None
    client_name: str | None = None

    def query(self) -> dict[str, str]:
        """The query arguments that carry this target to another mfa page."""
        if self.flow_id:
            return {"flow": self.flow_id}
        return {"next": self.next} if self.next else {}


def _target() -> Target | Response:
    flow_id = request.values.get("flow") or None
    next_path = request.values.get("next") or None
    if flow_id:
        pending = flow_web.get(flow_id)
        if pending is None:
            return flow_web.expired_page()
        if uri := pending.params.get("redirect_uri"):
            # The form's answer may redirect straight to the app; CSP form-action covers that.
            allow_form_action(uri)
        return Target(flow_id=flow_id, client_name=pending.client_name)
    if next_path:
        if safe_next(next_path) is None:
            return _page("error.html", status=400, title=_("Invalid link"),
                         message=_("This link does not lead back to this site."))
        return Target(next=next_path)
    return Target()


def _page(template: str, status: int = 200, **context: object) -> Response:
    return Response(render_template(template, **context), status=status, mimetype="text/html")


def device_cookie_name() -> str:
    secure = current_app.config["SESSION_COOKIE_SECURE"]
    return f"__Host-{DEVICE_COOKIE}" if secure else DEVICE_COOKIE


def _signed_in() -> User | None:
    sso_session = flow_web.current_session()
    return sso_session.user if sso_session else None


def _to_login(target: Target) -> Response:
    if target.flow_id:
        return redirect(url_for("auth.login", flow=target.flow_id))  # type: ignore[return-value]
    return redirect(url_for("auth.login"))  # type: ignore[return-value]


def _target_and_session() -> tuple[Target, SSOSession] | Response:
    """Where to go afterwards, and the SSO session the second factor is for (or the page that
    answers instead: an expired flow, a bad ``next``, the sign-in page)."""
    target = _target()
    if isinstance(target, Response):
        return target
    sso_session = flow_web.current_session()
    if sso_session is None:
        return _to_login(target)
    return target, sso_session


def _finish(user: User, target: Target) -> Response:
    """Step the session up with "otp" and go on to the flow, ``next`` or the account page."""
    response = flow_web.complete_sign_in(user, ["otp"], target.flow_id)
    if target.next:
        response.headers["Location"] = target.next
    return response


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
            service.record_proof(sso_session.id, "device", now)
            audit.record("mfa.verify", origin=origin(), user_id=user.id, method="device",
                         session_id=sso_session.id, device_id=device.id)
            db.session.commit()
            destination = target.next or (
                flow_web.get(target.flow_id).resume_url()  # type: ignore[union-attr]
                if target.flow_id else url_for("auth.account"))
            return redirect(destination)  # type: ignore[return-value]
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
    service.record_proof(sso_session.id, method, now)
    cookie = None
    days = current_app.config["MFA_REMEMBER_DAYS"]
    if request.form.get("remember") == "1" and request.form.get("remember_device") and days > 0:
        _device, cookie = service.remember_device(user, origin=origin(), now=now, days=days)
    response = _finish(user, target)
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
    target = _target()
    if isinstance(target, Response):
        return target
    user = _signed_in()
    if user is None:
        return _to_login(target)
    if service.is_enrolled(user.id):
        return _page("mfa/done.html", title=_("Two-step verification is already on"),
                     message=_("Your account already has an authenticator app."),
                     continue_url=_continue_url(target))
    return _enrol_page(target, user, service.begin_enrolment(user))


def _continue_url(target: Target) -> str:
    if target.next:
        return target.next
    if target.flow_id and (pending := flow_web.get(target.flow_id)):
        return pending.resume_url()
    return url_for("auth.account")


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
                         continue_url=_continue_url(target))
        return _enrol_page(target, user, service.begin_enrolment(user),
                           _("This setup has expired. Scan the new code."))
    except service.CodeError as error:
        db.session.commit()
        assert enrolment is not None  # noqa: S101 - confirm_enrolment checked it
        message = (_("That code is not correct. Scan the code again and enter the code "
                     "your app shows now.") if error.reason == "wrong"
                   else _code_error(error.reason))
        return _enrol_page(target, user, enrolment, message)
    service.record_proof(sso_session.id, "otp", now)
    done = _finish(user, target)
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
    if not accounts.passwords().verify(user.password_hash, password):
        audit.record("mfa.remove", audit.FAILURE, origin=origin(), user_id=user.id,
                     reason="password")
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
