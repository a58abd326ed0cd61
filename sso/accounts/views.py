"""Account pages: activation (link or SMS code), self-registration, password reset and change,
and the picture challenge. Routes parse and commit; :mod:`.lifecycle` does the work."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from .. import ratelimit
from ..dbtypes import utcnow
from ..extensions import db
from ..flow import passage
from ..flow import pending as pending_flows
from ..i18n import gettext as _
from ..sessions.models import Proof
from ..users.models import User
from ..web import origin
from . import captcha, lifecycle, tokens
from .evenly import even_answer
from .policy import PasswordRejected, Problem
from .service import AccountError

bp = Blueprint("accounts", __name__)


def describe(problem: Problem) -> str:
    """One policy problem in the user's language."""
    if problem.code == "too_short":
        return _("Use at least %(count)s characters.", count=problem.value)
    if problem.code == "too_long":
        return _("Use at most %(count)s characters.", count=problem.value)
    if problem.code == "classes":
        return _("Mix letters, digits and symbols.")
    if problem.code == "common":
        return _("This password is too common. Choose one that is harder to guess.")
    if problem.code == "personal":
        return _("The password must not contain your username or email name.")
    if problem.code == "reused":
        return _("Choose a password you have not used recently.")
    return _("This password cannot be used.")


def link_problem(state: str) -> str:
    if state == tokens.EXPIRED:
        return _("This link or code has expired.")
    if state == tokens.USED:
        return _("This link has already been used, or a newer one was sent.")
    if state == "exhausted":
        return _("Too many wrong codes. Ask for a new one.")
    if state == "wrong":
        return _("The code is not correct, or it does not belong to this account.")
    return _("This link is not valid. Check that you copied all of it.")


def _page(template: str, status: int = 200, **context: object) -> Response:
    html = render_template(template, **context)
    return Response(html, status=status, mimetype="text/html")


def _throttled() -> bool:
    """Per-IP budget for every account form a stranger can post."""
    return not ratelimit.allow("account-ip", request.remote_addr or "-",
                               current_app.config["RATE_LIMIT_ACCOUNT_IP"])


def _too_many() -> Response:
    return _page("error.html", 429, title=_("Too many requests"),
                 message=_("Please wait a few minutes and try again."))


def _new_password(errors: list[str]) -> str | None:
    password = request.form.get("password", "")
    if not password:
        errors.append(_("Enter a new password."))
        return None
    if password != request.form.get("confirm", ""):
        errors.append(_("The two passwords are not the same."))
        return None
    return password


def _flow_id() -> str:
    flow_id = request.values.get("flow", "")
    return flow_id if pending_flows.get(flow_id) else ""


def _target() -> pending_flows.Target:
    """The pending request this page serves, if any (else the account page)."""
    return pending_flows.Target(pending_flows.get(_flow_id()))


def _password_proof() -> list[Proof]:
    """A new password set through a link or code, or the current one retyped, proves who the
    user is."""
    return [Proof("pwd", utcnow())]


# Activation.


@bp.route("/activate/<token>", methods=["GET", "POST"])
def activate(token: str) -> Response:
    if request.method == "POST" and _throttled():
        return _too_many()
    found = lifecycle.check_activation_link(token)
    if found.state != tokens.VALID:
        return _bad_link(found.state, "invite")
    errors: list[str] = []
    if request.method == "POST":
        password = _new_password(errors)
        if password is not None:
            try:
                user = lifecycle.activate_with_link(token, password, origin())
            except PasswordRejected as rejected:
                errors = [describe(p) for p in rejected.problems]
            except lifecycle.LinkError as error:
                db.session.commit()
                return _bad_link(error.state, "invite")
            else:
                return passage.finish(_target(), door="activation-link", user=user,
                                      proofs=_password_proof())
    assert found.token is not None  # noqa: S101
    user = db.session.get(User, found.token.user_id)
    return _page("accounts/set_password.html", 400 if errors else 200, errors=errors,
                 title=_("Activate your account"), username=user.username if user else "",
                 action=url_for("accounts.activate", token=token), flow=_flow_id())


@bp.route("/activate/code", methods=["GET", "POST"])
def activate_code() -> Response:
    return _code_form("invite")


@even_answer
def _code_form(purpose: str) -> Response:
    errors: list[str] = []
    login = request.values.get("login", "")[:254]
    if request.method == "POST":
        if _throttled():
            return _too_many()
        code = request.form.get("code", "")[:16]
        password = _new_password(errors)
        if password is not None:
            redeem = (lifecycle.activate_with_code if purpose == "invite"
                      else lifecycle.reset_with_code)
            try:
                user = redeem(login, code, password, origin())
            except PasswordRejected as rejected:
                errors = [describe(p) for p in rejected.problems]
            except lifecycle.LinkError as error:
                db.session.commit()  # keep the count of tries
                errors = [link_problem(error.state)]
            else:
                if purpose == "invite":
                    return passage.finish(_target(), door="activation-code", user=user,
                                          proofs=_password_proof())
                db.session.commit()
                return _page("accounts/done.html", title=_("Password changed"),
                             message=_("Your password has been changed. Sign in with the new "
                                       "password."))
    title = _("Activate with a code") if purpose == "invite" else _("Reset with a code")
    endpoint = "accounts.activate_code" if purpose == "invite" else "accounts.reset_code"
    return _page("accounts/code.html", 400 if errors else 200, errors=errors, title=title,
                 login=login, action=url_for(endpoint), flow=_flow_id(), purpose=purpose)


@bp.route("/activate/again", methods=["GET", "POST"])
@even_answer
def activate_again() -> Response:
    """Ask for a new activation link: one answer whether or not the account exists."""
    if request.method == "POST":
        if _throttled():
            return _too_many()
        lifecycle.request_new_invitation(request.form.get("login", "")[:254], origin())
        db.session.commit()
        return _page("accounts/done.html", title=_("Check your messages"),
                     message=_("If an account waiting for activation matches, we have sent "
                               "it a new link or code. Earlier ones no longer work."))
    return _page("accounts/ask.html", title=_("Ask for a new activation link"),
                 action=url_for("accounts.activate_again"), channels=False)


def _bad_link(state: str, purpose: str) -> Response:
    again = {"invite": "accounts.activate_again", "reset": "accounts.reset_request",
             "verify": "accounts.activate_again"}[purpose]
    return _page("accounts/bad_link.html", 400, title=_("This link cannot be used"),
                 message=link_problem(state), again=url_for(again))


# Self-registration.


def _registration_enabled() -> None:
    if not current_app.config["SELF_REGISTRATION"]:
        abort(404)


@bp.route("/register", methods=["GET", "POST"])
@even_answer
def register() -> Response:
    _registration_enabled()
    errors: list[str] = []
    form = {k: request.form.get(k, "")[:254] for k in ("username", "email", "name")}
    if request.method == "POST":
        if _throttled():
            return _too_many()
        password = _new_password(errors)
        if not form["email"]:
            errors.append(_("Enter your email address."))
        if password is not None and not errors:
            try:
                lifecycle.register(form["username"], form["email"], password,
                                   form["name"] or None, origin(),
                                   locale=_current_locale())
            except PasswordRejected as rejected:
                errors = [describe(p) for p in rejected.problems]
            except AccountError as error:
                errors = [_account_error(error)]
            else:
                db.session.commit()
                return _page("accounts/done.html", title=_("Check your email"),
                             message=_("We have sent a link to %(email)s. Open it to confirm "
                                       "your address and finish the registration.",
                                       email=form["email"]))
    return _page("accounts/register.html", 400 if errors else 200, errors=errors, form=form)


def _current_locale() -> str:
    from ..i18n import current_locale  # noqa: PLC0415

    return current_locale()


def _account_error(error: AccountError) -> str:
    text = str(error)
    if text.startswith("username"):
        return _("Usernames are 2-64 characters: lower-case letters, digits, '.', '_' or '-'.")
    if text.startswith("email"):
        return _("Enter a valid email address.")
    if "already exists" in text:
        return _("This username is taken. Choose another.")
    return _("The registration could not be completed.")


@bp.route("/register/verify/<token>", methods=["GET", "POST"])
def verify_email(token: str) -> Response:
    """GET shows a button and POST uses the link, so mail scanners that follow links do not
    use it up. It works even if registration was switched off since the mail was sent."""
    if request.method == "POST" and _throttled():
        return _too_many()
    found = tokens.look_up_link(token, tokens.VERIFY, utcnow())
    if found.state != tokens.VALID:
        return _bad_link(found.state, "verify")
    if request.method == "POST":
        try:
            user = lifecycle.verify_registration(token, origin())
        except lifecycle.LinkError as error:
            return _bad_link(error.state, "verify")
        db.session.commit()
        if user.status == "pending":
            return _page("accounts/done.html", title=_("Waiting for approval"),
                         message=_("Your email address is confirmed. An administrator will "
                                   "review your registration; you will get an email once "
                                   "it is approved."))
        return _page("accounts/done.html", title=_("Email address confirmed"),
                     message=_("Your account is active. You can sign in now."),
                     sign_in=True)
    return _page("accounts/confirm.html", title=_("Confirm your email address"),
                 action=url_for("accounts.verify_email", token=token))


# Password reset.


@bp.route("/password/reset", methods=["GET", "POST"])
@even_answer
def reset_request() -> Response:
    if request.method == "POST":
        if _throttled():
            return _too_many()
        channel = tokens.SMS if request.form.get("channel") == "sms" else tokens.EMAIL
        login = request.form.get("login", "")[:254]
        lifecycle.request_reset(login, channel, origin())
        db.session.commit()
        if channel == tokens.SMS:
            return redirect(url_for("accounts.reset_code", login=login,  # type: ignore[return-value]
                                    sent=1))
        return _page("accounts/done.html", title=_("Check your email"),
                     message=_("If an account matches, we have sent it a link to choose a new "
                               "password. The link expires in %(minutes)s minutes.",
                               minutes=current_app.config["RESET_TTL"] // 60))
    return _page("accounts/ask.html", title=_("Forgot your password?"),
                 action=url_for("accounts.reset_request"), channels=True)


@bp.route("/password/reset/code", methods=["GET", "POST"])
def reset_code() -> Response:
    return _code_form("reset")


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset(token: str) -> Response:
    if request.method == "POST" and _throttled():
        return _too_many()
    found = lifecycle.check_reset_link(token)
    if found.state != tokens.VALID:
        return _bad_link(found.state, "reset")
    errors: list[str] = []
    if request.method == "POST":
        password = _new_password(errors)
        if password is not None:
            try:
                lifecycle.reset_with_link(token, password, origin())
            except PasswordRejected as rejected:
                errors = [describe(p) for p in rejected.problems]
            except lifecycle.LinkError as error:
                db.session.commit()
                return _bad_link(error.state, "reset")
            else:
                db.session.commit()
                return _page("accounts/done.html", title=_("Password changed"),
                             message=_("Your password has been changed. Sign in with the new "
                                       "password."), sign_in=True)
    assert found.token is not None  # noqa: S101
    user = db.session.get(User, found.token.user_id)
    return _page("accounts/set_password.html", 400 if errors else 200, errors=errors,
                 title=_("Choose a new password"), username=user.username if user else "",
                 action=url_for("accounts.reset", token=token), flow="")


# Password change (voluntary, or the flow's password_change step).


@bp.route("/password/change", methods=["GET", "POST"])
def change_password() -> Response:
    sso_session = passage.current_session()
    flow_id = _flow_id()
    if sso_session is None:
        return redirect(url_for("auth.login", flow=flow_id or None))  # type: ignore[return-value]
    user = sso_session.user
    errors: list[str] = []
    if request.method == "POST":
        if _throttled():
            return _too_many()
        current = request.form.get("current", "")
        password = _new_password(errors)
        if password is not None:
            try:
                lifecycle.change_password(user, current, password, origin(), sso_session.id)
            except PasswordRejected as rejected:
                db.session.rollback()
                errors = [describe(p) for p in rejected.problems]
            except lifecycle.LinkError:
                db.session.commit()  # the failure counts toward the lockout
                errors = [_("Your current password is not correct.")]
            else:
                if flow_id:
                    return passage.finish(_target(), door="password-change", user=user,
                                          proofs=_password_proof())
                db.session.commit()
                return _page("accounts/done.html", title=_("Password changed"),
                             message=_("Your password has been changed."), account=True)
    forced = user.must_change_password or bool(flow_id)
    return _page("accounts/change_password.html", 400 if errors else 200, errors=errors,
                 forced=forced, flow=flow_id, username=user.username)


# The picture challenge.


@bp.get("/captcha/<challenge_id>.png")
def captcha_image(challenge_id: str) -> Response:
    answer = captcha.answer_of(challenge_id)
    if answer is None:
        abort(404)
    response = Response(captcha.render(answer), mimetype="image/png")
    response.headers["Cache-Control"] = "no-store"
    return response
