"""SMS through Tencent Cloud SMS (API 3.0, ``SendSms`` version 2021-01-11).

Requests are signed with TC3-HMAC-SHA256: a canonical request (method, path, query, the
signed headers, SHA-256 of the body) is hashed into a string to sign together with the
timestamp and the credential scope ``<date>/sms/tc3_request``; the signing key is derived by
chaining HMAC-SHA256 over ``"TC3" + SecretKey``, the date, the service and ``tc3_request``.

Chinese carriers only deliver pre-approved templates, so the message text is not sent: the
SMS's purpose picks a template id from ``SSO_TENCENT_SMS_TEMPLATES`` and its parameters are
sent in the order :data:`TEMPLATE_PARAMS` gives. Settings: ``SSO_SMS_TRANSPORT=tencent``,
``SSO_TENCENT_SMS_SECRET_ID``, ``SSO_TENCENT_SMS_SECRET_KEY``, ``SSO_TENCENT_SMS_APP_ID``
(SmsSdkAppId), ``SSO_TENCENT_SMS_SIGN_NAME``, ``SSO_TENCENT_SMS_TEMPLATES`` (JSON object),
``SSO_TENCENT_SMS_REGION`` and ``SSO_TENCENT_SMS_ENDPOINT``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from .. import outbound
from ..outbox import OutboxMessage

SERVICE = "sms"
ACTION = "SendSms"
VERSION = "2021-01-11"
ALGORITHM = "TC3-HMAC-SHA256"
CONTENT_TYPE = "application/json; charset=utf-8"
SIGNED_HEADERS = "content-type;host;x-tc-action"
#: The order of each template's parameters ({1}, {2}, ... in the approved template).
TEMPLATE_PARAMS = {
    "activation_code": ("code", "minutes"),
    "reset_code": ("code", "minutes"),
    "captcha_code": ("code", "minutes"),
}


class SmsError(RuntimeError):
    """The provider refused the message; the outbox retries it later."""


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def sign(secret_id: str, secret_key: str, host: str, payload: bytes, timestamp: int,
         action: str = ACTION, service: str = SERVICE) -> str:
    """The ``Authorization`` header of one request."""
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    canonical_headers = (f"content-type:{CONTENT_TYPE}\nhost:{host}\n"
                         f"x-tc-action:{action.lower()}\n")
    canonical_request = "\n".join([
        "POST", "/", "", canonical_headers, SIGNED_HEADERS,
        hashlib.sha256(payload).hexdigest(),
    ])
    scope = f"{date}/{service}/tc3_request"
    string_to_sign = "\n".join([
        ALGORITHM, str(timestamp), scope,
        hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
    ])
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode("utf-8"), date), service),
                "tc3_request")
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return (f"{ALGORITHM} Credential={secret_id}/{scope}, "
            f"SignedHeaders={SIGNED_HEADERS}, Signature={signature}")


def e164(phone: str) -> str:
    """Tencent wants +<country><number>; a bare 11-digit mainland mobile gets +86."""
    if phone.startswith("+"):
        return phone
    if len(phone) == 11 and phone.startswith("1"):
        return "+86" + phone
    return "+" + phone


def _templates(config: Any) -> dict[str, str]:
    raw = config.get("TENCENT_SMS_TEMPLATES") or {}
    return json.loads(raw) if isinstance(raw, str) else dict(raw)


def send(message: OutboxMessage, config: Any, now: float | None = None) -> None:
    """Deliver one SMS from the outbox; raise on any refusal so that it is retried."""
    template_name = message.payload.get("template", message.purpose)
    template_id = _templates(config).get(template_name)
    if not template_id:
        raise SmsError(f"no Tencent template id for {template_name!r} "
                       "(SSO_TENCENT_SMS_TEMPLATES)")
    params = message.payload.get("params", {})
    order = TEMPLATE_PARAMS.get(template_name, tuple(sorted(params)))
    body = json.dumps({
        "PhoneNumberSet": [e164(message.recipient)],
        "SmsSdkAppId": str(config["TENCENT_SMS_APP_ID"]),
        "SignName": config["TENCENT_SMS_SIGN_NAME"],
        "TemplateId": str(template_id),
        "TemplateParamSet": [str(params.get(name, "")) for name in order],
    }, ensure_ascii=False).encode("utf-8")
    endpoint = config["TENCENT_SMS_ENDPOINT"]
    host = urlsplit(endpoint).netloc
    timestamp = int(now if now is not None else time.time())
    headers = {
        "Authorization": sign(config["TENCENT_SMS_SECRET_ID"],
                              config["TENCENT_SMS_SECRET_KEY"], host, body, timestamp),
        "Content-Type": CONTENT_TYPE,
        "X-TC-Action": ACTION,
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Version": VERSION,
        "X-TC-Region": config["TENCENT_SMS_REGION"],
    }
    # A total deadline and a capped answer, like every call out (sso/outbound.py).
    response = outbound.post(endpoint, body, headers, deadline=float(
        config.get("SMS_TIMEOUT", 10)), config=config, max_bytes=64 * 1024)
    if response.status != 200:
        raise SmsError(f"HTTP {response.status}")
    answer = json.loads(response.body.decode("utf-8"))
    result = answer.get("Response", {})
    if "Error" in result:
        raise SmsError(f"{result['Error'].get('Code')}: {result['Error'].get('Message')}")
    statuses = result.get("SendStatusSet") or []
    if not statuses or statuses[0].get("Code") != "Ok":
        detail = statuses[0] if statuses else result
        raise SmsError(f"not sent: {detail.get('Code')}: {detail.get('Message')}")
