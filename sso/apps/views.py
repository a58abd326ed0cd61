"""The pages of the activation step: "waiting for approval" and "no access"."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request
from werkzeug.wrappers import Response

from ..extensions import db
from ..flow import web as flow_web
from ..oidc import authorize
from ..oidc.models import Client
from ..web import allow_form_action
from . import service
from .models import AppAccount
from .models import AppAccountStatus as Status
from .step import REFUSED

bp = Blueprint("apps", __name__, url_prefix="/apps")


def _context() -> tuple[flow_web.Pending, Client, AppAccount | None] | None:
    pending = flow_web.get(request.values.get("flow"))
    session = flow_web.current_session()
    if pending is None or session is None:
        return None
    client = db.session.get(Client, pending.params.get("client_id", ""))
    if client is None:
        return None
    if uri := pending.params.get("redirect_uri") or client.get_default_redirect_uri():
        allow_form_action(uri)
    return pending, client, service.find(session.user_id, client.client_id)


@bp.get("/waiting")
def waiting() -> Response:
    """Shown until an admin decides; it reloads itself and moves on once they have."""
    found = _context()
    if found is None:
        return flow_web.expired_page()
    pending, client, account = found
    if account is None or account.status != Status.PENDING:
        return redirect(pending.resume_url())  # type: ignore[return-value]
    html = render_template(
        "apps/waiting.html", client=client, flow=pending.flow_id,
        refresh=current_app.config["APPS_WAITING_REFRESH"],
    )
    return Response(html, mimetype="text/html")


@bp.get("/refused")
def refused() -> Response:
    found = _context()
    if found is None:
        return flow_web.expired_page()
    pending, client, account = found
    if account is not None and account.status in (Status.ACTIVE, Status.PENDING,
                                                  Status.PROVISIONED):
        return redirect(pending.resume_url())  # type: ignore[return-value]
    reason = account.status if account is not None else "not_provisioned"
    html = render_template("apps/refused.html", client=client, flow=pending.flow_id,
                           reason=reason)
    return Response(html, status=403, mimetype="text/html")


@bp.post("/refused")
def refused_back() -> Response:
    """Back to the app, which learns ``access_denied``."""
    return authorize.cancel(request.form.get("flow"), REFUSED.description)


@bp.post("/waiting")
def waiting_cancel() -> Response:
    """The user gives up waiting: the app learns ``access_denied``."""
    return authorize.cancel(request.form.get("flow"),
                            "The user stopped waiting for an administrator's approval.")
