"""The picture challenge's alternative: ask for a one-time code by email or SMS instead of
reading the picture (``sso.accounts.captcha`` says why this one)."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from werkzeug.wrappers import Response

from .. import ratelimit
from ..extensions import db
from ..flow import pending as pending_flows
from ..web import origin
from . import lifecycle

bp = Blueprint("captcha", __name__)


@bp.route("/captcha/code", methods=["GET", "POST"])
def code() -> Response:
    flow_id = request.values.get("flow", "")
    flow_id = flow_id if pending_flows.get(flow_id) else ""
    sent = False
    status = 200
    if request.method == "POST":
        if ratelimit.allow("account-ip", request.remote_addr or "-",
                           current_app.config["RATE_LIMIT_ACCOUNT_IP"]):
            lifecycle.send_captcha_code(request.form.get("login", "")[:254], origin())
            db.session.commit()
            sent = True
        else:
            status = 429
    html = render_template("accounts/captcha_code.html", flow=flow_id, sent=sent,
                           limited=status == 429)
    return Response(html, status=status, mimetype="text/html")
