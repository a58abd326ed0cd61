"""``/dev/outbox``: the messages the provider would have sent, for development and tests.

Registered only when ``SSO_ENV=development`` or in tests; production has no such page.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

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
    html = render_template("notify/outbox.html", messages=messages, shown=shown_body)
    return Response(html, mimetype="text/html")


def shown_body(message: OutboxMessage) -> str:
    """What a developer reads of a message: the text of a mail or SMS; for a signed event to
    an app (a JWT), its claims, pretty-printed (not verified: this page only shows them)."""
    if message.channel == "event" and message.body_text:
        claims = _jwt_claims(message.body_text)
        if claims is not None:
            return json.dumps(claims, indent=2, ensure_ascii=False, sort_keys=True)
    if message.body_text:
        return message.body_text
    return json.dumps(message.payload or {}, indent=2, ensure_ascii=False, sort_keys=True)


def _jwt_claims(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    return claims if isinstance(claims, dict) else None
