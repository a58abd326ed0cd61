"""Pending requests in the browser's signed flow cookie, and where a sign-in page returns to.

A pending request lives in Flask's signed session cookie (``sso_flow``) under a random flow id
that the pages carry in their URL, so several tabs can each sign in to a different app, no
server state is needed before the user is known, and an id copied to another browser is
worthless there. Only the newest few flows are kept. The flow keeps the protocol's parameters
without reading them: it only needs to know which endpoint resumes the request and to which
origin the browser will be sent at the end (for the pages' CSP ``form-action``).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, g, render_template, request, session, url_for
from werkzeug.wrappers import Response

from ..i18n import gettext as _
from ..web import allow_form_action

FLOWS_KEY = "flows"
MAX_FLOWS = 4


@dataclass(frozen=True)
class Pending:
    flow_id: str
    params: dict[str, str]
    started_at: datetime
    #: The endpoint that resumes the request once a step is done (``oidc.resume``).
    resume_endpoint: str
    #: The app's name, for "sign in to continue to ...".
    client_name: str
    #: The origin the request ends at (the app's redirect URI), allowed as a form target.
    return_origin: str | None = None
    #: Set by :func:`sso.flow.passage.abort`: ``(error, description)`` for the app.
    aborted: tuple[str, str] | None = None

    def resume_url(self) -> str:
        return url_for(self.resume_endpoint, flow=self.flow_id)


def start(params: dict[str, str], resume_endpoint: str, client_name: str,
          return_origin: str | None = None) -> Pending:
    flows: dict[str, Any] = dict(session.get(FLOWS_KEY, {}))
    now = time.time()
    ttl = current_app.config["FLOW_TTL"]
    flows = {k: v for k, v in flows.items() if v["t"] + ttl > now}
    while len(flows) >= MAX_FLOWS:
        flows.pop(min(flows, key=lambda k: flows[k]["t"]))
    flow_id = secrets.token_urlsafe(16)
    flows[flow_id] = {"p": params, "t": now, "r": resume_endpoint, "n": client_name,
                      "o": return_origin}
    session[FLOWS_KEY] = flows
    return _pending(flow_id, flows[flow_id])


def get(flow_id: str | None) -> Pending | None:
    """The pending request of this browser with that id, if it has not expired.

    A page that serves a pending request may end with a redirect to the app, so its CSP lets
    forms post there (browsers apply ``form-action`` to every redirect after a form POST).
    """
    if not flow_id or len(flow_id) > 64:
        return None
    entry = session.get(FLOWS_KEY, {}).get(flow_id)
    if entry is None or entry["t"] + current_app.config["FLOW_TTL"] < time.time():
        return None
    # Pages serving this request speak the language the app asked for (OIDC ui_locales).
    g.ui_locales = entry["p"].get("ui_locales")
    if entry.get("o"):
        allow_form_action(entry["o"])
    return _pending(flow_id, entry)


def mark_aborted(pending: Pending, error: str, description: str) -> None:
    flows = dict(session.get(FLOWS_KEY, {}))
    if pending.flow_id in flows:
        flows[pending.flow_id] = {**flows[pending.flow_id], "x": [error, description]}
        session[FLOWS_KEY] = flows


def drop(flow_id: str) -> None:
    """Forget a pending request (it was answered)."""
    flows = dict(session.get(FLOWS_KEY, {}))
    if flows.pop(flow_id, None) is not None:
        session[FLOWS_KEY] = flows


def _pending(flow_id: str, entry: dict[str, Any]) -> Pending:
    aborted = entry.get("x")
    return Pending(
        flow_id=flow_id,
        params=dict(entry["p"]),
        started_at=datetime.fromtimestamp(entry["t"], UTC),
        resume_endpoint=entry["r"],
        client_name=entry.get("n", ""),
        return_origin=entry.get("o"),
        aborted=(str(aborted[0]), str(aborted[1])) if aborted else None,
    )


def origin_of(uri: str | None) -> str | None:
    """``scheme://host[:port]`` of an http(s) URI, else None (a native app's scheme)."""
    parts = urlsplit(uri or "")
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def expired_page() -> Response:
    """What a stale or foreign flow id gets: a plain explanation, never a redirect."""
    html = render_template(
        "error.html", status=400, title=_("This sign-in has expired"),
        message=_("This sign-in request has expired. Go back to the app and try again."),
    )
    return Response(html, status=400, mimetype="text/html")


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
    """Where a sign-in page sends the browser once it is done: the pending request, a path
    on this site (``next``: a phone returning to a scanned code), or the account page."""

    pending: Pending | None = None
    next: str | None = None

    @property
    def flow_id(self) -> str | None:
        return self.pending.flow_id if self.pending else None

    @property
    def client_name(self) -> str | None:
        return self.pending.client_name if self.pending else None

    def url(self) -> str:
        if self.pending is not None:
            return self.pending.resume_url()
        return self.next or url_for("auth.account")

    def query(self) -> dict[str, str]:
        """The query arguments that carry this target to another sign-in page."""
        if self.pending is not None:
            return {"flow": self.pending.flow_id}
        return {"next": self.next} if self.next else {}


def target_from_request() -> Target | Response:
    """The target named by the request's ``flow`` or ``next``; or the page that answers
    instead (an expired flow, a ``next`` leading off this site)."""
    flow_id = request.values.get("flow") or None
    next_path = request.values.get("next") or None
    if flow_id:
        pending = get(flow_id)
        if pending is None:
            return expired_page()
        return Target(pending=pending)
    if next_path:
        if safe_next(next_path) is None:
            html = render_template("error.html", status=400, title=_("Invalid link"),
                                   message=_("This link does not lead back to this site."))
            return Response(html, status=400, mimetype="text/html")
        return Target(next=next_path)
    return Target()
