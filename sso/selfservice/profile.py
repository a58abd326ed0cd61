"""The profile: the user's display name, a new email address confirmed by a link sent to
that address (it changes only when someone who reads that mailbox confirms), and a new mobile
number confirmed by a code sent by SMS to that number (:mod:`.phone`).

The pending change lives in Redis (short-lived state, DESIGN.md §5) under the SHA-256 of the
link's secret, for :data:`EMAIL_CHANGE_TTL` seconds, and is taken with ``GETDEL`` so a link
works once.
"""

from __future__ import annotations

import contextlib
import json
import re

import redis
from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from .. import audit, notify, ratelimit
from ..extensions import db, get_redis
from ..flow import passage
from ..i18n import gettext as _
from ..security import hash_token, new_token
from ..users.models import User
from ..users.service import normalise_email
from ..web import origin
from . import phone as phones

bp = Blueprint("selfservice_profile", __name__, url_prefix="/account")

EMAIL_CHANGE_TTL = 24 * 3600
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s.]{2,63}$")


def _key(secret: str) -> str:
    return get_redis().key("selfservice", "email", hash_token(secret))


def _page(template: str, status: int = 200, **context: object) -> Response:
    return Response(render_template(template, **context), status=status, mimetype="text/html")


@bp.route("/profile", methods=["GET", "POST"])
def profile() -> Response:
    session = passage.current_session()
    if session is None:
        return redirect(url_for("auth.login", next=request.path))  # type: ignore[return-value]
    user = session.user
    errors: list[str] = []
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        email = normalise_email(request.form.get("email", "")[:254])
        if not name or len(name) > 128:
            errors.append(_("Enter your name (at most 128 characters)."))
        if email and email != user.email:
            taken = db.session.scalar(select(User.id).where(User.email == email))
            if not _EMAIL.match(email):
                errors.append(_("Enter a valid email address."))
            elif taken is not None:
                # Same answer as a sent link would not reveal it, but the user must know.
                errors.append(_("That email address cannot be used."))
        if not errors:
            sent = False
            if name != user.name:
                audit.record("account.profile", origin=origin(), user_id=user.id, field="name")
                user.name = name
            if email and email != user.email:
                _send_email_link(user, email)
                sent = True
            db.session.commit()
            return redirect(url_for("selfservice_profile.profile",  # type: ignore[return-value]
                                    saved=1, sent=1 if sent else None))
    return _profile_page(user, 400 if errors else 200, errors=errors,
                         form=request.form if errors else None)


def _profile_page(user: User, status: int = 200, **context: object) -> Response:
    try:
        pending_phone = phones.pending(user.id)
    except redis.RedisError:
        pending_phone = None
    context.setdefault("errors", [])
    context.setdefault("phone_errors", [])
    return _page("selfservice/profile.html", status, user=user, pending_phone=pending_phone,
                 code_minutes=phones.TTL // 60, **context)


def _send_email_link(user: User, email: str) -> None:
    secret = new_token()
    get_redis().client.set(_key(secret), json.dumps({"user_id": user.id, "email": email}),
                           ex=EMAIL_CHANGE_TTL)
    link = current_app.config["ISSUER"] + url_for("selfservice_profile.confirm_email",
                                                  token=secret)
    notify.mail(email, "confirm_email_change", locale=user.locale, purpose="email-change",
                user_id=user.id, user=user, link=link, hours=EMAIL_CHANGE_TTL // 3600)
    audit.record("account.email_change_request", origin=origin(), user_id=user.id)


@bp.route("/email/<token>", methods=["GET", "POST"])
def confirm_email(token: str) -> Response:
    """A GET only shows the button (mail scanners follow links); the POST changes it."""
    if len(token) > 128:
        abort(404)
    redis = get_redis().client
    raw = redis.get(_key(token)) if request.method == "GET" else redis.getdel(_key(token))
    if raw is None:
        return _page("selfservice/email.html", 404, state="bad")
    pending = json.loads(raw)
    if request.method == "GET":
        return _page("selfservice/email.html", state="ask", email=pending["email"],
                     token=token)
    user = db.session.get(User, int(pending["user_id"]))
    taken = db.session.scalar(select(User.id).where(User.email == pending["email"]))
    if user is None or (taken is not None and taken != user.id):
        return _page("selfservice/email.html", 409, state="bad")
    user.email, user.email_verified = pending["email"], True
    audit.record("account.email_change", origin=origin(), user_id=user.id)
    db.session.commit()
    return _page("selfservice/email.html", state="done", email=user.email)


PHONE_SMS = "phone_change_code"
PHONE_NOTICE_SMS = "phone_changed"


@bp.post("/phone")
def change_phone() -> Response:
    """Send a code to the new number. The answer is the same whoever else has that number."""
    session = passage.current_session()
    if session is None:
        return redirect(url_for("auth.login", next="/account/profile"))  # type: ignore[return-value]
    user = session.user
    typed = request.form.get("phone", "")[:64]
    phone = phones.valid_phone(typed)
    if phone is None:
        return _profile_page(user, 400, phone_errors=[_(
            "Enter a mobile number: digits only, optionally with a leading +.")], phone=typed)
    if phone == user.phone and user.phone_verified:
        return _profile_page(user, 400, phone_errors=[_("That is already your number.")],
                             phone=typed)
    if not ratelimit.allow("phone-change-user", str(user.id),
                           str(current_app.config["RATE_LIMIT_PHONE_CHANGE_USER"])):
        audit.record_now("account.phone_change_request", audit.FAILURE, origin=origin(),
                         user_id=user.id, reason="rate_limited")
        return _profile_page(user, 429, phone_errors=[_(
            "Too many codes asked for. Please wait a few minutes.")], phone=typed)
    try:
        code = phones.start(user, phone)
    except redis.RedisError:
        return _profile_page(user, 503, phone_errors=[_(
            "Changing the number is not available right now. Please try again later.")],
            phone=typed)
    notify.sms(phone, PHONE_SMS, locale=user.locale, user_id=user.id,
               params={"code": code, "minutes": str(phones.TTL // 60)})
    audit.record("account.phone_change_request", origin=origin(), user_id=user.id,
                 ending=phones.ending(phone))
    db.session.commit()
    return redirect(url_for("selfservice_profile.profile",  # type: ignore[return-value]
                            phone_sent=1) + "#phone-confirm")


@bp.post("/phone/confirm")
def confirm_phone() -> Response:
    """The code typed on the profile page: the number changes, the old one is told."""
    session = passage.current_session()
    if session is None:
        return redirect(url_for("auth.login", next="/account/profile"))  # type: ignore[return-value]
    user = session.user
    if request.form.get("cancel"):
        with contextlib.suppress(redis.RedisError):
            phones.cancel(user.id)
        return redirect(url_for("selfservice_profile.profile"))  # type: ignore[return-value]
    try:
        result = phones.check(user, request.form.get("code", "")[:32])
    except redis.RedisError:
        return _profile_page(user, 503, phone_errors=[_(
            "Changing the number is not available right now. Please try again later.")])
    if result.outcome == phones.OK and result.phone:
        previous = phones.change(user, result.phone)
        if previous:
            notify.sms(previous, PHONE_NOTICE_SMS, locale=user.locale, user_id=user.id,
                       params={"username": user.username, "ending": phones.ending(result.phone)})
        audit.record("account.phone_change", origin=origin(), user_id=user.id,
                     ending=phones.ending(result.phone), had_number=previous is not None)
        db.session.commit()
        return redirect(url_for("selfservice_profile.profile",  # type: ignore[return-value]
                                phone_changed=1))
    audit.record_now("account.phone_change", audit.FAILURE, origin=origin(), user_id=user.id,
                     reason=result.outcome)
    if result.outcome == phones.WRONG:
        error = _("That code is not right. Tries left: %(left)s.", left=result.tries_left)
    elif result.outcome == phones.TAKEN:
        error = _("This number cannot be used for your account. Contact your administrator "
                  "if you think it should.")
    else:
        error = _("This code has expired or has been used up. Ask for a new one.")
    return _profile_page(user, 409 if result.outcome == phones.TAKEN else 400,
                         phone_errors=[error])
