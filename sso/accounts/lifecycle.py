"""An account's life: invitation and activation, self-registration with email verification
and optional approval, password reset and change, disabling. No Flask request in here.

Every public entry point that takes a name typed by a stranger (ask for a new invitation,
ask for a reset) does the same visible thing whether or not the account exists: no message is
sent for unknown users, and the caller shows one answer. Messages per user are rate-limited.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select

from .. import audit, notify, ratelimit
from ..audit import Origin
from ..dbtypes import utcnow
from ..extensions import db
from ..oidc.public import ACCOUNT_DISABLED, CREDENTIAL_CHANGE, revoke_grants, signal
from ..security import PasswordHashing
from ..sessions import service as sessions
from ..users.models import User, UserStatus
from . import lockout, policy, tokens
from .service import (
    AccountError,
    check_new_user,
    create_user,
    find_by_login,
    normalise_phone,
    passwords,
    set_password,
)

log = logging.getLogger(__name__)

ACTIVATE_PATH = "/activate/"
ACTIVATE_CODE_PATH = "/activate/code"
RESET_PATH = "/password/reset/"
RESET_CODE_PATH = "/password/reset/code"
VERIFY_PATH = "/register/verify/"


class LinkError(Exception):
    """A link or code that cannot be used; ``state`` says why (used, expired, unknown,
    wrong, exhausted)."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


def _config() -> Any:
    return current_app.config


def _issuer() -> str:
    return str(current_app.config["ISSUER"])


def _locale(user: User) -> str:
    return user.locale or str(current_app.config.get("DEFAULT_LANGUAGE", "en"))


def find_for_code(login: str) -> User | None:
    """The user a code form names: by username or email, else by a phone number only one
    account has."""
    user = find_by_login(login)
    if user is not None:
        return user
    phone = normalise_phone(login)
    if not phone or len(phone) > 32:
        return None
    matches = db.session.scalars(select(User).where(User.phone == phone).limit(2)).all()
    return matches[0] if len(matches) == 1 else None


def _may_send(user: User) -> bool:
    """At most a few messages per user per window, whoever asks (stops mail and SMS floods)."""
    return ratelimit.allow("account-msg", str(user.id),
                           str(current_app.config["RATE_LIMIT_MESSAGES_PER_USER"]))


# Invitation and activation.


def invite(username: str, *, email: str | None = None, phone: str | None = None,
           name: str | None = None, is_admin: bool = False, channel: str | None = None,
           locale: str | None = None, origin: Origin | None = None,
           actor: str | None = None) -> tuple[User, str]:
    """Create an invited user (no password yet) and send the activation link or code."""
    if not email and not phone:
        raise AccountError("an invitation needs an email address or a mobile number")
    user = create_user(username, email=email, phone=phone, name=name, is_admin=is_admin,
                       status=UserStatus.INVITED, origin=origin)
    user.locale = locale
    sent = send_invitation(user, channel=channel, origin=origin, actor=actor)
    return user, sent


def send_invitation(user: User, *, channel: str | None = None, origin: Origin | None = None,
                    actor: str | None = None, now: datetime | None = None) -> str:
    """(Re)send the activation link by email or a code by SMS; older ones stop working."""
    if user.status != UserStatus.INVITED:
        raise AccountError(f"{user.username} is {user.status}, not invited")
    now = now or utcnow()
    channel = channel or (tokens.EMAIL if user.email else tokens.SMS)
    config = _config()
    if channel == tokens.EMAIL:
        if not user.email:
            raise AccountError(f"{user.username} has no email address")
        raw = tokens.issue_link(user, tokens.INVITE, int(config["INVITE_TTL"]), now)
        notify.mail(user.email, "invite", locale=_locale(user), purpose="activation",
                    user_id=user.id, user=user, link=_issuer() + ACTIVATE_PATH + raw,
                    hours=int(config["INVITE_TTL"]) // 3600)
    elif channel == tokens.SMS:
        if not user.phone:
            raise AccountError(f"{user.username} has no mobile number")
        code = tokens.issue_code(user, tokens.INVITE, int(config["SMS_CODE_TTL"]), now)
        notify.sms(user.phone, "activation_code", locale=_locale(user), user_id=user.id,
                   params={"code": code, "minutes": str(int(config["SMS_CODE_TTL"]) // 60),
                           "link": _issuer() + ACTIVATE_CODE_PATH})
    else:
        raise AccountError("channel: email or sms")
    audit.record("account.invite_sent", origin=origin, user_id=user.id, channel=channel,
                 actor=actor)
    return channel


def request_new_invitation(login: str, origin: Origin | None = None) -> None:
    """Someone whose link expired asks again: resend only to a still-invited account."""
    user = find_for_code(login) if login.strip() else None
    if user is None or user.status != UserStatus.INVITED or not _may_send(user):
        audit.record("account.invite_request", audit.FAILURE, origin=origin,
                     user_id=user.id if user else None, subject=login[:254])
        return
    if user.password_hash:
        # A self-registered account waiting for its email check: send that link again.
        _send_verification(user, origin)
        return
    send_invitation(user, origin=origin)


def _activate(user: User, password: str, origin: Origin | None, via: str) -> None:
    set_password(user, password, origin, reason="activation")
    user.status = UserStatus.ACTIVE
    if via == tokens.EMAIL:
        user.email_verified = True
    else:
        user.phone_verified = True
    audit.record("account.activate", origin=origin, user_id=user.id, channel=via)


def check_activation_link(raw: str | None, now: datetime | None = None) -> tokens.LinkState:
    return tokens.look_up_link(raw, tokens.INVITE, now or utcnow())


def activate_with_link(raw: str | None, password: str, origin: Origin | None = None,
                       now: datetime | None = None) -> User:
    """Set the first password through the emailed link; the link works once."""
    user = _redeem_link(raw, tokens.INVITE, UserStatus.INVITED, password, "account.activate",
                        origin, now)
    _activate(user, password, origin, tokens.EMAIL)
    return user


def _redeem_link(raw: str | None, purpose: str, status: str, password: str, event: str,
                 origin: Origin | None, now: datetime | None) -> User:
    """The user a valid ``purpose`` link is for, once the new password passes the policy and
    the link is consumed (exactly one of two racing redemptions gets here)."""
    now = now or utcnow()
    found = tokens.look_up_link(raw, purpose, now)
    if found.state != tokens.VALID or found.token is None:
        raise LinkError(found.state)
    user = db.session.get(User, found.token.user_id)
    if user is None or user.status != status:
        raise LinkError(tokens.USED)
    policy.check(password, _config(), _hasher(), user=user)
    if not tokens.consume(found.token, now):
        audit.record(event, audit.FAILURE, origin=origin, user_id=user.id, reason="race")
        raise LinkError(tokens.USED)
    return user


def activate_with_code(login: str, code: str, password: str, origin: Origin | None = None,
                       now: datetime | None = None) -> User:
    """Set the first password with the SMS code (10 minutes, 5 tries)."""
    return _redeem_code(login, code, password, tokens.INVITE, origin, now)


def _redeem_code(login: str, code: str, password: str, purpose: str,
                 origin: Origin | None, now: datetime | None) -> User:
    now = now or utcnow()
    user = find_for_code(login) if login.strip() else None
    wanted = UserStatus.INVITED if purpose == tokens.INVITE else None
    if user is None or (wanted and user.status != wanted):
        audit.record(f"account.{purpose}_code", audit.FAILURE, origin=origin,
                     subject=login[:254], reason="unknown")
        raise LinkError("wrong")
    policy.check(password, _config(), _hasher(), user=user)
    result, token = tokens.check_code(user, purpose, code, now)
    if result != tokens.CodeResult.OK or token is None:
        audit.record(f"account.{purpose}_code", audit.FAILURE, origin=origin,
                     user_id=user.id, reason=result)
        raise LinkError(tokens.EXPIRED if result == tokens.CodeResult.NONE else
                        "exhausted" if result == tokens.CodeResult.EXHAUSTED else "wrong")
    if not tokens.consume(token, now):
        raise LinkError(tokens.USED)
    if purpose == tokens.INVITE:
        _activate(user, password, origin, tokens.SMS)
    else:
        _finish_reset(user, password, origin, tokens.SMS)
    return user


def _hasher() -> PasswordHashing:
    return passwords()


# Self-registration.


def register(username: str, email: str, password: str, name: str | None = None,
             origin: Origin | None = None, locale: str | None = None) -> User | None:
    """Create an account waiting for its email check (``SSO_SELF_REGISTRATION``).

    An email address that already has an account gets the same answer and nothing is
    created; a taken username must be said (the user has to pick another).
    """
    if not email:
        raise AccountError("email: required")
    if find_by_login(email) is not None:
        # The same checks, in the same order, and the same hash as creating the account, so
        # neither the answer nor its time tells that the address has an account.
        check_new_user(username, email, password)
        audit.record("account.register", audit.FAILURE, origin=origin, subject=email[:254],
                     reason="email_taken")
        return None
    user = create_user(username, email=email, password=password, name=name,
                       status=UserStatus.INVITED, origin=origin)
    user.locale = locale
    audit.record("account.register", origin=origin, user_id=user.id)
    _send_verification(user, origin)
    return user


def _send_verification(user: User, origin: Origin | None) -> None:
    config = _config()
    raw = tokens.issue_link(user, tokens.VERIFY, int(config["REGISTRATION_TTL"]), utcnow())
    notify.mail(user.email or "", "verify_email", locale=_locale(user), purpose="verify",
                user_id=user.id, user=user, link=_issuer() + VERIFY_PATH + raw,
                hours=int(config["REGISTRATION_TTL"]) // 3600)
    audit.record("account.verify_sent", origin=origin, user_id=user.id)


def verify_registration(raw: str | None, origin: Origin | None = None,
                        now: datetime | None = None) -> User:
    """The emailed link of a self-registration: the address is proved; the account becomes
    active, or waits for an admin when ``SSO_REGISTRATION_APPROVAL`` is on."""
    now = now or utcnow()
    found = tokens.look_up_link(raw, tokens.VERIFY, now)
    if found.state != tokens.VALID or found.token is None:
        raise LinkError(found.state)
    user = db.session.get(User, found.token.user_id)
    if user is None or user.status != UserStatus.INVITED or not tokens.consume(found.token, now):
        raise LinkError(tokens.USED)
    user.email_verified = True
    user.status = (UserStatus.PENDING if current_app.config["REGISTRATION_APPROVAL"]
                   else UserStatus.ACTIVE)
    audit.record("account.verify_email", origin=origin, user_id=user.id, status=user.status)
    return user


def approve(user: User, actor: str | None = None, origin: Origin | None = None) -> None:
    if user.status != UserStatus.PENDING:
        raise AccountError(f"{user.username} is {user.status}, not pending approval")
    user.status = UserStatus.ACTIVE
    audit.record("account.approve", origin=origin, user_id=user.id, actor=actor)
    if user.email:
        notify.mail(user.email, "approved", locale=_locale(user), purpose="approved",
                    user_id=user.id, user=user, link=_issuer() + "/")


def deny(user: User, actor: str | None = None, origin: Origin | None = None) -> None:
    """Refuse a pending registration: the account is deleted (its name becomes free)."""
    if user.status != UserStatus.PENDING:
        raise AccountError(f"{user.username} is {user.status}, not pending approval")
    audit.record("account.deny", origin=origin, user_id=user.id, actor=actor,
                 username=user.username)
    db.session.delete(user)


# Disabling.


def disable(user: User, actor: str | None = None, origin: Origin | None = None) -> int:
    """No more sign-ins; every live SSO session ends (and with it its refresh tokens)."""
    user.status = UserStatus.DISABLED
    ended = sessions.end_user_sessions(user.id, reason="disabled", origin=origin)
    audit.record("account.disable", origin=origin, user_id=user.id, actor=actor,
                 sessions_ended=ended)
    return ended


def freeze(user: User, actor: str | None = None, origin: Origin | None = None
           ) -> tuple[int, int]:
    """An account that looks taken over: disabled, every SSO session ended (the apps hear of
    it), every grant (offline ones too) revoked. Returns (sessions ended, grants revoked)."""
    signal(user, ACCOUNT_DISABLED, {"reason": "hijacking"})  # before its grants are gone
    ended = disable(user, actor=actor, origin=origin)
    revoked = revoke_grants(user.id, reason="freeze", origin=origin)
    audit.record("account.freeze", origin=origin, user_id=user.id, actor=actor,
                 sessions_ended=ended, grants_revoked=revoked)
    return ended, revoked


def enable(user: User, actor: str | None = None, origin: Origin | None = None) -> None:
    if user.status not in (UserStatus.DISABLED, UserStatus.LOCKED):
        raise AccountError(f"{user.username} is {user.status}, not disabled")
    user.status = UserStatus.ACTIVE if user.password_hash else UserStatus.INVITED
    audit.record("account.enable", origin=origin, user_id=user.id, actor=actor)


def unlock(user: User, actor: str | None = None, origin: Origin | None = None) -> None:
    lockout.unlock(user.id, origin, actor=actor)
    if user.status == UserStatus.LOCKED:
        user.status = UserStatus.ACTIVE


# Password reset and change.


def request_reset(login: str, channel: str = tokens.EMAIL, origin: Origin | None = None,
                  now: datetime | None = None) -> None:
    """Send a reset link (30 min) or code. Unknown names, accounts that cannot reset and
    users over their message budget get the same answer and no message."""
    now = now or utcnow()
    user = find_for_code(login) if login.strip() else None
    config = _config()
    usable = user is not None and user.status == UserStatus.ACTIVE
    address = (user.email if channel == tokens.EMAIL else user.phone) if user else None
    if not usable or not address or user is None or not _may_send(user):
        audit.record("password.reset_request", audit.FAILURE, origin=origin,
                     user_id=user.id if user else None, subject=login[:254], channel=channel)
        return
    if channel == tokens.EMAIL:
        raw = tokens.issue_link(user, tokens.RESET, int(config["RESET_TTL"]), now)
        notify.mail(address, "reset", locale=_locale(user), purpose="reset", user_id=user.id,
                    user=user, link=_issuer() + RESET_PATH + raw,
                    minutes=int(config["RESET_TTL"]) // 60)
    else:
        code = tokens.issue_code(user, tokens.RESET, int(config["SMS_CODE_TTL"]), now)
        notify.sms(address, "reset_code", locale=_locale(user), user_id=user.id,
                   params={"code": code, "minutes": str(int(config["SMS_CODE_TTL"]) // 60)})
    audit.record("password.reset_request", origin=origin, user_id=user.id, channel=channel)


def check_reset_link(raw: str | None, now: datetime | None = None) -> tokens.LinkState:
    return tokens.look_up_link(raw, tokens.RESET, now or utcnow())


def reset_with_link(raw: str | None, password: str, origin: Origin | None = None,
                    now: datetime | None = None) -> User:
    user = _redeem_link(raw, tokens.RESET, UserStatus.ACTIVE, password, "password.reset",
                        origin, now)
    _finish_reset(user, password, origin, tokens.EMAIL)
    return user


def reset_with_code(login: str, code: str, password: str, origin: Origin | None = None,
                    now: datetime | None = None) -> User:
    return _redeem_code(login, code, password, tokens.RESET, origin, now)


def _finish_reset(user: User, password: str, origin: Origin | None, via: str) -> None:
    set_password(user, password, origin, reason="reset")
    lockout.unlock(user.id, origin, actor="password-reset")
    ended = 0
    if current_app.config["PASSWORD_RESET_ENDS_SESSIONS"]:
        ended = sessions.end_user_sessions(user.id, reason="password_reset", origin=origin)
    # Whoever had the old password may hold a grant: none outlives a reset.
    signal(user, CREDENTIAL_CHANGE, {"credential_type": "password", "change_type": "update"})
    revoked = revoke_grants(user.id, reason="password_reset", origin=origin)
    audit.record("password.reset", origin=origin, user_id=user.id, channel=via,
                 sessions_ended=ended, grants_revoked=revoked)
    _tell_password_changed(user, origin)


def change_password(user: User, current: str, new: str, origin: Origin | None = None,
                    session_id: str | None = None) -> None:
    """The signed-in user replaces their password (after proving the current one)."""
    if lockout.locked_for(user.id):
        audit.record("password.change", audit.FAILURE, origin=origin, user_id=user.id,
                     reason="locked")
        raise LinkError("locked")
    if not _hasher().verify(user.password_hash, current[:1024]):
        audit.record("password.change", audit.FAILURE, origin=origin, user_id=user.id,
                     reason="wrong_current")
        lockout.register_failure(user.id, origin)
        raise LinkError("wrong")
    set_password(user, new, origin, reason="change")
    ended = 0
    if current_app.config["PASSWORD_RESET_ENDS_SESSIONS"]:
        ended = sessions.end_user_sessions(user.id, reason="password_change", origin=origin,
                                           keep=session_id)
    # Grants of other browsers and apps end too (offline ones unless the setting keeps them);
    # the browser that made the change keeps its own.
    signal(user, CREDENTIAL_CHANGE, {"credential_type": "password", "change_type": "update"})
    revoked = revoke_grants(
        user.id, reason="password_change", origin=origin, keep_session=session_id,
        keep_offline=bool(current_app.config["KEEP_OFFLINE_ON_PASSWORD_CHANGE"]))
    audit.record("password.change", origin=origin, user_id=user.id, sessions_ended=ended,
                 grants_revoked=revoked)
    _tell_password_changed(user, origin)


def _tell_password_changed(user: User, origin: Origin | None) -> None:
    if user.email:
        notify.mail(user.email, "password_changed", locale=_locale(user),
                    purpose="password-changed", user_id=user.id, user=user,
                    ip=(origin.ip if origin else None) or "-",
                    reset_link=_issuer() + "/password/reset")


# The picture challenge's alternative (see sso.accounts.captcha).


def send_captcha_code(login: str, origin: Origin | None = None) -> None:
    """Send the account ``login`` names a one-time code that stands in for the picture's
    characters: by email, else by SMS. Nothing tells the asker whether it was sent."""
    from . import captcha  # noqa: PLC0415

    user = find_for_code(login) if login.strip() else None
    if (user is None or user.status != UserStatus.ACTIVE or not (user.email or user.phone)
            or not _may_send(user)):
        audit.record("signin.captcha_code", audit.FAILURE, origin=origin,
                     user_id=user.id if user else None, subject=login[:254])
        return
    code = captcha.send_code(user)
    if code is None:
        return
    minutes = str(captcha.CODE_TTL // 60)
    if user.email:
        notify.mail(user.email, "captcha_code", locale=_locale(user), purpose="captcha-code",
                    user_id=user.id, user=user, code=code, minutes=minutes)
        channel = tokens.EMAIL
    else:
        notify.sms(user.phone, "captcha_code", locale=_locale(user), user_id=user.id,
                   params={"code": code, "minutes": minutes})
        channel = tokens.SMS
    audit.record("signin.captcha_code", origin=origin, user_id=user.id, channel=channel)
