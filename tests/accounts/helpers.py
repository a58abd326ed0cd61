"""Read what the provider sent from the outbox table, as a user reads their mail."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from sso.extensions import db
from sso.outbox import OutboxMessage


def messages(to: str, purpose: str | None = None) -> list[OutboxMessage]:
    query = select(OutboxMessage).where(OutboxMessage.recipient == to)
    if purpose:
        query = query.where(OutboxMessage.purpose == purpose)
    return list(db.session.scalars(query.order_by(OutboxMessage.id)))


def last_link(to: str, purpose: str) -> str:
    found = messages(to, purpose)
    assert found, f"no {purpose} message to {to}"
    link = re.search(r"https?://\S+/(?:activate|password/reset|register/verify)/[\w-]+",
                     found[-1].body_text or "")
    assert link, found[-1].body_text
    return link.group(0)


def last_code(to: str, purpose: str) -> str:
    found = messages(to, purpose)
    assert found, f"no {purpose} SMS to {to}"
    return str(found[-1].payload["params"]["code"])


def token_of(link: str) -> str:
    return link.rsplit("/", 1)[1]


def in_app(app: Any, function: Any, *args: Any, **kwargs: Any) -> Any:
    with app.app_context():
        result = function(*args, **kwargs)
        db.session.commit()
        return result
