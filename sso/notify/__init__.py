"""Mail and SMS to users, through the persistent outbox (``sso.outbox``).

A mail is one template, ``templates/mail/<name>.html``, with three blocks: ``subject``,
``text`` and ``html``, rendered in the recipient's language. An SMS is
``templates/sms/<name>.txt`` for providers that take free text; template-based providers
(most Chinese carriers' gateways) get the purpose and parameters from the payload instead.

Transports are chosen by configuration: ``SSO_MAIL_TRANSPORT`` is ``smtp`` or ``outbox``
(keep messages in the table, readable at ``/dev/outbox``; the default in development and
tests), ``SSO_SMS_TRANSPORT`` likewise (``outbox`` or a provider adapter).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from flask import Flask, current_app, g

from .. import outbox
from ..outbox import OutboxMessage


@contextlib.contextmanager
def language(locale: str | None) -> Iterator[None]:
    """Render in ``locale`` (the recipient's), whatever the current request speaks."""
    previous = g.get("locale")
    if locale:
        g.locale = locale
    try:
        yield
    finally:
        if previous is None:
            g.pop("locale", None)
        else:
            g.locale = previous


def _render_blocks(template_name: str, context: dict[str, Any]) -> dict[str, str]:
    env = current_app.jinja_env
    template = env.get_template(template_name)
    rendered = {}
    full = template.new_context({**current_app.jinja_env.globals, **context})
    for block in ("subject", "text", "html"):
        if block in template.blocks:
            rendered[block] = "".join(template.blocks[block](full)).strip()
    return rendered


def mail(to: str, name: str, *, locale: str | None, purpose: str | None = None,
         user_id: int | None = None, **context: Any) -> OutboxMessage:
    """Queue mail ``name`` to ``to``; it leaves when the current transaction commits."""
    with language(locale):
        blocks = _render_blocks(f"mail/{name}.html", context)
    return outbox.enqueue("mail", purpose or name, to, subject=blocks.get("subject"),
                          body_text=blocks.get("text"), body_html=blocks.get("html"),
                          user_id=user_id)


def sms(phone: str, name: str, *, locale: str | None, params: dict[str, str],
        user_id: int | None = None) -> OutboxMessage:
    """Queue SMS ``name`` (e.g. ``activation_code``) with ``params`` (e.g. the code)."""
    with language(locale):
        text = current_app.jinja_env.get_template(f"sms/{name}.txt").render(**params).strip()
    return outbox.enqueue("sms", name, phone, body_text=text,
                          payload={"template": name, "params": params}, user_id=user_id)


def init_app(app: Flask) -> None:
    from . import transports  # noqa: PLC0415

    development = app.config["ENV"] == "development" or app.config["TESTING"]
    app.config.setdefault("MAIL_TRANSPORT", "outbox" if development else "smtp")
    app.config.setdefault("SMS_TRANSPORT", "outbox" if development else "none")
    transports.register()
    if development:
        from .views import bp  # noqa: PLC0415

        app.register_blueprint(bp)
