"""``/dev/outbox``: the messages the provider would have sent, for development and tests.

Registered only when ``SSO_ENV=development`` or in tests; production has no such page.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from ..extensions import db
from ..outbox import OutboxMessage

bp = Blueprint("notify", __name__)


@bp.get("/dev/outbox")
def outbox_page() -> Response:
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(100)
    if recipient := request.args.get("to"):
        query = query.where(OutboxMessage.recipient == recipient.strip().lower())
    messages = db.session.scalars(query).all()
    if request.args.get("format") == "json" or request.accept_mimetypes.best == "application/json":
        return jsonify([{
            "id": m.id, "channel": m.channel, "purpose": m.purpose, "to": m.recipient,
            "subject": m.subject, "text": m.body_text, "html": m.body_html,
            "status": m.status, "created_at": m.created_at.isoformat(),
        } for m in messages])
    html = render_template("notify/outbox.html", messages=messages)
    return Response(html, mimetype="text/html")
