"""``/account/sessions``, ``/account/apps``, ``/account/activity``: the signed-in user's view
of their sessions, apps and recent sign-in activity. Each form carries the CSRF token; a
session or grant that is not the user's own is answered 404, like one that does not exist."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from .. import audit, notify
from ..audit import AuditEvent, Origin
from ..extensions import db
from ..flow import passage
from ..i18n import current_locale
from ..i18n import gettext as _
from ..oidc.public import access_of, forget_app, frontchannel_uris, revoke_grant
from ..sessions import devices
from ..sessions import service as sessions
from ..sessions.models import SSOSession, UserDevice
from ..users.groups import effective_client_ids
from ..users.models import User
from ..web import allow_frame, origin

bp = Blueprint("selfservice", __name__, url_prefix="/account")

#: How many of the user's own audit rows the activity page shows.
ACTIVITY_ROWS = 50
#: Audit events a person recognises as their own sign-in activity, and their words for them.
ACTIVITY_EVENTS = ("signin", "signout", "session.end", "signin.failure", "password.change",
                   "password.reset", "mfa.enrol", "mfa.reset", "consent.grant",
                   "app.access_revoke", "grant.revoke", "account.freeze", "login")


def _signed_in() -> SSOSession:
    session = passage.current_session()
    if session is None:
        abort(redirect(url_for("auth.login", next=request.path)))
    return session


def _page(template: str, **context: Any) -> Response:
    return Response(render_template(template, **context), mimetype="text/html")


@dataclass
class SessionRow:
    id: str
    browser: str
    system: str
    ip: str | None
    started: datetime
    last_active: datetime
    apps: list[str]
    current: bool


def _app_names(client_ids: list[str] | None) -> list[str]:
    from ..oidc.public import get  # noqa: PLC0415

    locale = current_locale()
    names = []
    for client_id in client_ids or []:
        client = get(client_id)
        if client is not None:
            names.append(client.display_name(locale))
    return names


@bp.get("/sessions")
def sessions_page() -> Response:
    current = _signed_in()
    rows = []
    for session in sessions.live_sessions(current.user_id):
        browser, system = devices.describe(session.user_agent)
        rows.append(SessionRow(session.id, browser, system, session.ip, session.created_at,
                               session.last_seen_at, _app_names(session.client_ids),
                               session.id == current.id))
    rows.sort(key=lambda r: (not r.current, -r.started.timestamp()))
    return _page("selfservice/sessions.html", rows=rows, user=current.user,
                 alert=devices.wants_alert(current.user_id),
                 idle_minutes=int(current_app.config["SESSION_IDLE"]) // 60,
                 max_hours=int(current_app.config["SESSION_MAX"]) // 3600)


@bp.post("/sessions/end")
def end_one() -> Response:
    current = _signed_in()
    target = sessions.get(request.form.get("session_id", "")[:64])
    if target is None or target.user_id != current.user_id or target.ended_at is not None:
        abort(404)
    if target.id == current.id:
        return _sign_out_here(current)
    sessions.end_session(target, reason="user", origin=origin())
    db.session.commit()
    return redirect(url_for("selfservice.sessions_page", ended=1))  # type: ignore[return-value]


@bp.post("/sessions/end-others")
def end_others() -> Response:
    current = _signed_in()
    sessions.end_user_sessions(current.user_id, reason="user", origin=origin(), keep=current.id)
    db.session.commit()
    return redirect(url_for("selfservice.sessions_page", ended=1))  # type: ignore[return-value]


def _sign_out_here(current: SSOSession) -> Response:
    frames = frontchannel_uris(current)
    for uri in frames:
        allow_frame(uri)
    page = _page("oidc/logged_out.html", frames=frames, target=None,
                 wait=current_app.config["FRONTCHANNEL_WAIT"])
    return passage.sign_out(current, page, door="logout")


@bp.post("/settings")
def settings() -> Response:
    current = _signed_in()
    enabled = request.form.get("new_device_alert") == "on"
    devices.set_alert(current.user_id, enabled)
    audit.record("account.settings", origin=origin(), user_id=current.user_id,
                 new_device_alert=enabled)
    db.session.commit()
    return redirect(url_for("selfservice.sessions_page"))  # type: ignore[return-value]


@bp.get("/apps")
def apps_page() -> Response:
    current = _signed_in()
    user = current.user
    reached = effective_client_ids(user)  # roles held directly or via a group
    for session in sessions.live_sessions(user.id):
        reached.update(session.client_ids or [])
    apps = access_of(user.id, sorted(reached))
    return _page("selfservice/apps.html", apps=apps, user=user, locale=current_locale())


@bp.post("/apps/revoke")
def revoke_app() -> Response:
    current = _signed_in()
    client_id = request.form.get("client_id", "")[:64]
    family = request.form.get("grant", "")[:64]
    if family:
        if not revoke_grant(current.user_id, family, origin=origin()):
            abort(404)
    else:
        known = {a.client.client_id for a in access_of(current.user_id)}
        if client_id not in known:
            abort(404)
        forget_app(current.user_id, client_id, origin=origin())
    db.session.commit()
    return redirect(url_for("selfservice.apps_page", revoked=1))  # type: ignore[return-value]


@bp.get("/activity")
def activity_page() -> Response:
    current = _signed_in()
    rows = db.session.scalars(
        select(AuditEvent).where(AuditEvent.user_id == current.user_id)
        .order_by(AuditEvent.at.desc()).limit(ACTIVITY_ROWS)
    ).all()
    entries = []
    for row in rows:
        browser, system = devices.describe(row.user_agent)
        entries.append({"at": row.at, "what": describe_event(row.event, row.outcome),
                        "ip": row.ip, "browser": browser, "system": system,
                        "failed": row.outcome != audit.SUCCESS})
    return _page("selfservice/activity.html", entries=entries, user=current.user)


def describe_event(event: str, outcome: str) -> str:
    """A person's words for an audit event (the event's name when there are none)."""
    words = {
        "signin": _("Signed in"),
        "signout": _("Signed out"),
        "session.open": _("Session started"),
        "session.step_up": _("Verified again"),
        "session.end": _("Session ended"),
        "password.change": _("Password changed"),
        "password.reset": _("Password reset"),
        "consent.grant": _("Gave an app access"),
        "app.access_revoke": _("Took back an app's access"),
        "grant.revoke": _("App access ended"),
        "code.issue": _("Signed in to an app"),
        "account.settings": _("Changed account settings"),
        "account.profile": _("Profile changed"),
        "account.email_change_request": _("Asked to change the email address"),
        "account.email_change": _("Email address changed"),
        "account.phone_change_request": _("Asked for a code to change the mobile number"),
        "account.phone_change": _("Mobile number changed"),
        "login": _("Sign-in attempt"),
    }
    text = words.get(event, event)
    if outcome != audit.SUCCESS:
        text = _("%(what)s (failed)", what=text)
    return text


def mail_new_device(user: User, device: UserDevice, session: SSOSession,
                    at: Origin) -> None:
    """A sign-in from a browser this account has not used before: tell the user (unless they
    turned the alert off), with the device, IP, time and where to end the session."""
    if not user.email or not devices.wants_alert(user.id):
        return
    browser, system = devices.describe(device.user_agent)
    issuer = current_app.config["ISSUER"]
    notify.mail(user.email, "new_device", locale=user.locale, purpose="new-device",
                user_id=user.id, user=user, browser=browser or _("Unknown browser"),
                system=system or _("unknown system"), ip=at.ip or "-",
                time=device.first_seen_at.strftime("%Y-%m-%d %H:%M UTC"),
                link=issuer + url_for("selfservice.sessions_page"))
    audit.record("account.new_device_alert", origin=at, user_id=user.id, session_id=session.id)
