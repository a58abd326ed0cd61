"""Password sign-in and the signed-in user's own page."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from .. import audit, ratelimit
from ..accounts import captcha, lockout
from ..accounts import service as accounts
from ..dbtypes import utcnow
from ..extensions import db
from ..flow import passage
from ..flow.pending import Target, target_from_request
from ..i18n import SUPPORTED, lang_cookie_name
from ..i18n import gettext as _
from ..sessions.models import Proof
from ..users import service as users
from ..web import origin

bp = Blueprint("auth", __name__)


def _login_page(target: Target, error: str | None = None, username: str = "",
                status: int = 200, challenge: bool = False,
                help_endpoint: str | None = None) -> Response:
    pending = target.pending
    html = render_template(
        "auth/login.html", flow=target.flow_id or "", next=target.next or "",
        target_query=target.query(), client_name=target.client_name, error=error,
        username=username or (pending.params.get("login_hint", "") if pending else ""),
        captcha_id=captcha.create() if challenge else None, help_endpoint=help_endpoint,
        self_registration=current_app.config["SELF_REGISTRATION"],
    )
    return Response(html, status=status, mimetype="text/html")


def _refusal(result: accounts.SignInResult) -> tuple[str, str | None]:
    """What a refused sign-in is told. An account's state is only named after the right
    password; a lock is named for any name, known or not, so it reveals nothing."""
    if result.reason == "locked":
        minutes = max(1, -(-result.locked_seconds // 60))
        return _("Too many failed attempts. Sign-in with this name is paused for %(minutes)s "
                 "minutes. You can reset your password meanwhile.", minutes=minutes), \
            "accounts.reset_request"
    if result.reason == "invited":
        return _("This account is not activated yet. Use the activation link or code we sent "
                 "you, or ask for a new one."), "accounts.activate_again"
    if result.reason == "pending":
        return _("This account is waiting for an administrator's approval."), None
    if result.reason == "disabled":
        return _("This account has been disabled. Contact your administrator."), None
    if result.reason == "locked_by_admin":
        return _("This account is locked. Contact your administrator."), None
    # Same words for an unknown user and a wrong password: no user enumeration.
    return _("Incorrect username or password."), "accounts.reset_request"


@bp.get("/login")
def login() -> Response:
    target = target_from_request()
    if isinstance(target, Response):
        return target
    return _login_page(target, challenge=lockout.captcha_required(request.remote_addr))


@bp.post("/login")
def login_submit() -> Response:
    target = target_from_request()
    if isinstance(target, Response):
        return target
    username = request.form.get("username", "")[:254]
    password = request.form.get("password", "")
    if not ratelimit.allow("login-ip", request.remote_addr or "-",
                           current_app.config["RATE_LIMIT_LOGIN_IP"]):
        return _login_page(target, _("Too many sign-in attempts. Please wait a few minutes."),
                           username, status=429)
    if not username or not password:
        return _login_page(target, _("Enter your username and password."), username)
    known = users.find_by_login(username)
    subject = known.id if known else lockout.unknown_subject(username)
    if lockout.captcha_required(request.remote_addr, subject) and not captcha.verify(
            request.form.get("captcha_id"), request.form.get("captcha"),
            user_id=known.id if known else None):
        # The password is not even checked until the picture is answered.
        audit.record_now("signin.captcha", audit.FAILURE, origin=origin(),
                         user_id=known.id if known else None, subject=username)
        return _login_page(target, _("Type the characters shown in the picture."), username,
                           status=400, challenge=True)
    result = accounts.authenticate(username, password, origin())
    if result.user is None:
        db.session.commit()
        message, help_endpoint = _refusal(result)
        return _login_page(target, message, username,
                           challenge=lockout.captcha_required(request.remote_addr, subject),
                           help_endpoint=help_endpoint)
    return passage.finish(target, door="password", user=result.user,
                          proofs=[Proof("pwd", utcnow())])


@bp.get("/")
def account() -> Response:
    sso_session = passage.current_session()
    if sso_session is None:
        return redirect(url_for("auth.login"))  # type: ignore[return-value]
    if sso_session.user.must_change_password:
        return redirect(url_for("accounts.change_password"))  # type: ignore[return-value]
    html = render_template("auth/account.html", user=sso_session.user, sso_session=sso_session)
    return Response(html, mimetype="text/html")


@bp.get("/lang/<code>")
def language(code: str) -> Response:
    target = request.args.get("next", "/")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        target = "/"
    response = redirect(target)
    if code in SUPPORTED:
        response.set_cookie(lang_cookie_name(), code, path="/", max_age=365 * 24 * 3600,
                            samesite="Lax", httponly=True,
                            secure=current_app.config["SESSION_COOKIE_SECURE"])
    return response  # type: ignore[return-value]
