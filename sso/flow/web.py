"""The flow in the browser: pending requests in the signed flow cookie, and the one place
where every sign-in method ends.

A pending request lives in Flask's signed session cookie (``sso_flow``) under a random flow id
that the pages carry in their URL, so several tabs can each sign in to a different app, no
server state is needed before the user is known, and an id copied to another browser is
worthless there. Only the newest few flows are kept.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import current_app, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from .. import audit
from ..dbtypes import utcnow
from ..extensions import db
from ..i18n import gettext as _
from ..sessions import service as sessions
from ..sessions.models import SSOSession
from ..users.models import User
from ..web import origin

FLOWS_KEY = "flows"
MAX_FLOWS = 4
FLOW_ID_LENGTH = 22


@dataclass(frozen=True)
class Pending:
    flow_id: str
    params: dict[str, str]
    started_at: datetime
    #: The endpoint that resumes the request once a step is done (``oidc.resume``).
    resume_endpoint: str
    #: The app's name, for "sign in to continue to ...".
    client_name: str

    def resume_url(self) -> str:
        return url_for(self.resume_endpoint, flow=self.flow_id)


def start(params: dict[str, str], resume_endpoint: str, client_name: str) -> Pending:
    flows: dict[str, Any] = dict(session.get(FLOWS_KEY, {}))
    now = time.time()
    ttl = current_app.config["FLOW_TTL"]
    flows = {k: v for k, v in flows.items() if v["t"] + ttl > now}
    while len(flows) >= MAX_FLOWS:
        flows.pop(min(flows, key=lambda k: flows[k]["t"]))
    flow_id = secrets.token_urlsafe(16)
    flows[flow_id] = {"p": params, "t": now, "r": resume_endpoint, "n": client_name}
    session[FLOWS_KEY] = flows
    return _pending(flow_id, flows[flow_id])


def get(flow_id: str | None) -> Pending | None:
    """The pending request of this browser with that id, if it has not expired."""
    if not flow_id or len(flow_id) > 64:
        return None
    entry = session.get(FLOWS_KEY, {}).get(flow_id)
    if entry is None or entry["t"] + current_app.config["FLOW_TTL"] < time.time():
        return None
    # Pages serving this request speak the language the app asked for (OIDC ui_locales).
    g.ui_locales = entry["p"].get("ui_locales")
    return _pending(flow_id, entry)


def finish(flow_id: str) -> None:
    flows = dict(session.get(FLOWS_KEY, {}))
    if flows.pop(flow_id, None) is not None:
        session[FLOWS_KEY] = flows


def _pending(flow_id: str, entry: dict[str, Any]) -> Pending:
    return Pending(
        flow_id=flow_id,
        params=dict(entry["p"]),
        started_at=datetime.fromtimestamp(entry["t"], UTC),
        resume_endpoint=entry["r"],
        client_name=entry.get("n", ""),
    )


def expired_page() -> Response:
    """What a stale or foreign flow id gets: a plain explanation, never a redirect."""
    html = render_template(
        "error.html", status=400, title=_("This sign-in has expired"),
        message=_("This sign-in request has expired. Go back to the app and try again."),
    )
    return Response(html, status=400, mimetype="text/html")


# The SSO session cookie.


def session_cookie_name() -> str:
    # The __Host- prefix pins the cookie to this host, path / and HTTPS (RFC 6265bis §4.1.3).
    return "__Host-sso_session" if current_app.config["SESSION_COOKIE_SECURE"] else "sso_session"


def current_session() -> SSOSession | None:
    """The live SSO session of this browser (looked up once per request)."""
    if "sso_session" not in g:
        g.sso_session = sessions.find_by_secret(request.cookies.get(session_cookie_name()))
    return g.sso_session  # type: ignore[no-any-return]


def set_session_cookie(response: Response, secret: str) -> None:
    config = current_app.config
    response.set_cookie(
        session_cookie_name(), secret, max_age=config["SESSION_TTL"], path="/",
        secure=config["SESSION_COOKIE_SECURE"], httponly=True, samesite="Lax",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(
        session_cookie_name(), path="/", secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True, samesite="Lax",
    )


def complete_sign_in(user: User, amr: list[str], flow_id: str | None) -> Response:
    """Open (or step up) the SSO session for ``user`` and hand the browser back to its flow.

    Password, QR code, a second factor and any later method all end here.
    """
    previous = current_session()
    sso_session, secret = sessions.open_session(
        user, amr, lifetime=current_app.config["SESSION_TTL"], origin=origin(),
        previous=previous, now=utcnow(),
    )
    audit.record("signin", origin=origin(), user_id=user.id, session_id=sso_session.id,
                 amr=amr)
    db.session.commit()
    g.sso_session = sso_session
    pending = get(flow_id)
    target = pending.resume_url() if pending else url_for("auth.account")
    response = redirect(target)
    set_session_cookie(response, secret)
    return response
