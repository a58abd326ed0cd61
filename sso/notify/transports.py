"""How messages leave: SMTP for mail; the dev outbox for both mail and SMS."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Any

from .. import outbound, outbox
from ..outbox import Hold, OutboxMessage


def hold(message: OutboxMessage, config: Any) -> None:
    """Development: keep the message in the table for /dev/outbox and the tests."""
    raise Hold()


def smtp(message: OutboxMessage, config: Any) -> None:
    """Send one mail over SMTP (``SSO_SMTP_SECURITY``: starttls, ssl or none)."""
    host = config.get("SMTP_HOST")
    if not host:
        raise RuntimeError("SSO_SMTP_HOST is not set")
    email = EmailMessage()
    email["Subject"] = message.subject or ""
    email["From"] = formataddr((config.get("MAIL_FROM_NAME", ""), config["MAIL_FROM"]))
    email["To"] = message.recipient
    email["Message-ID"] = make_msgid(domain=config["MAIL_FROM"].partition("@")[2] or None)
    email.set_content(message.body_text or "")
    if message.body_html:
        email.add_alternative(message.body_html, subtype="html")
    security = config.get("SMTP_SECURITY", "starttls")
    port = int(config.get("SMTP_PORT") or (465 if security == "ssl" else 587))
    timeout = float(config.get("SMTP_TIMEOUT", 10))
    context = ssl.create_default_context()
    if config.get("SMTP_CA_FILE"):
        context.load_verify_locations(config["SMTP_CA_FILE"])
    client: smtplib.SMTP
    if security == "ssl":
        client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    # A total deadline: smtplib's timeout is per operation, so a server that trickles could
    # hold the mail lane for ever; the timer shuts the socket down at the deadline.
    deadline = outbound.shutdown_after(float(config.get("SMTP_DEADLINE", 60)), client)
    with client:
        if security == "starttls":
            client.starttls(context=context)
        if config.get("SMTP_USERNAME"):
            client.login(config["SMTP_USERNAME"], config.get("SMTP_PASSWORD", ""))
        client.send_message(email)
    deadline.cancel()


def unconfigured(message: OutboxMessage, config: Any) -> None:
    raise RuntimeError(f"no transport configured for {message.channel} "
                       f"(set SSO_{message.channel.upper()}_TRANSPORT)")


def tencent(message: OutboxMessage, config: Any) -> None:
    from .tencent_sms import send  # noqa: PLC0415

    send(message, config)


MAIL_TRANSPORTS = {"smtp": smtp, "outbox": hold}
SMS_TRANSPORTS: dict[str, Any] = {"outbox": hold, "none": unconfigured, "tencent": tencent}


def register() -> None:
    outbox.register_transport(
        "mail", lambda config: MAIL_TRANSPORTS.get(config["MAIL_TRANSPORT"], unconfigured))
    outbox.register_transport(
        "sms", lambda config: SMS_TRANSPORTS.get(config["SMS_TRANSPORT"], unconfigured))
