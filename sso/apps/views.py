"""The pages of the activation step: "waiting for approval" and "no access"."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from werkzeug.wrappers import Response

from ..flow import passage
from ..flow import pending as pending_flows
from ..oidc.public import Client
from ..oidc.public import get as get_client
from . import service
from .models import AppAccount
from .models import AppAccountStatus as Status
from .step import REFUSED

bp = Blueprint("apps", __name__, url_prefix="/apps")


def _context() -> tuple[pending_flows.Pending, Client, AppAccount | None] | None:
    pending = pending_flows.get(request.values.get("flow"))
    session = passage.current_session()
    if pending is None or session is None:
        return None
    client = get_client(pending.params.get("client_id", ""))
    if client is None:
        return None
    return pending, client, service.find(session.user_id, client.client_id)


@bp.get("/waiting")
def waiting() -> Response:
    """Shown until an admin decides; it reloads itself and moves on once they have."""
    found = _context()
    if found is None:
        return pending_flows.expired_page()
    pending, client, account = found
    if account is None or account.status != Status.PENDING:
        return passage.finish(pending_flows.Target(pending), door="activation-decided")
    html = render_template(
        "apps/waiting.html", client=client, flow=pending.flow_id,
        refresh=current_app.config["APPS_WAITING_REFRESH"],
    )
    return Response(html, mimetype="text/html")


@bp.get("/refused")
def refused() -> Response:
    found = _context()
    if found is None:
        return pending_flows.expired_page()
    pending, client, account = found
    if account is not None and account.status in (Status.ACTIVE, Status.PENDING,
                                                  Status.PROVISIONED):
        return passage.finish(pending_flows.Target(pending), door="activation-decided")
    reason = account.status if account is not None else "not_provisioned"
    html = render_template("apps/refused.html", client=client, flow=pending.flow_id,
                           reason=reason)
    return Response(html, status=403, mimetype="text/html")


@bp.post("/refused")
def refused_back() -> Response:
    """Back to the app, which learns ``access_denied``."""
    return passage.abort(pending_flows.get(request.form.get("flow")),
                         door="activation-refused", description=REFUSED.description)


@bp.post("/waiting")
def waiting_cancel() -> Response:
    """The user gives up waiting: the app learns ``access_denied``."""
    return passage.abort(pending_flows.get(request.form.get("flow")),
                         door="activation-wait-cancel",
                         description="The user stopped waiting for an administrator's "
                                     "approval.")
