"""Mail over real SMTP (a local aiosmtpd server, plain and STARTTLS) and SMS through the
Tencent Cloud adapter against a local HTTP server that checks the TC3 signature."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import ssl
import threading
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sso import outbox
from sso.accounts import lifecycle
from sso.extensions import db
from sso.notify import tencent_sms
from sso.outbox import OutboxMessage
from tests.conftest import free_port


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content,
                                                                    policy=policy.default)))
        return "250 OK"


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "smtp.pem", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.parametrize("security", ["none", "starttls"])
def test_invitation_mail_over_smtp(app: Any, ctx: None, tmp_path: Path, security: str) -> None:
    inbox = Inbox()
    port = free_port()
    settings: dict[str, Any] = {"MAIL_TRANSPORT": "smtp", "SMTP_HOST": "localhost",
                                "SMTP_PORT": port, "SMTP_SECURITY": security,
                                "MAIL_FROM": "sso@example.com", "MAIL_FROM_NAME": "Company SSO"}
    options: dict[str, Any] = {}
    if security == "starttls":
        cert, key = _certificate(tmp_path)
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(cert, key)
        options = {"tls_context": server_tls, "require_starttls": True}
        settings["SMTP_CA_FILE"] = str(cert)
    controller = Controller(inbox, hostname="localhost", port=port, **options)
    controller.start()
    try:
        lifecycle.invite("bob", email="bob@example.com", name="Bob")
        db.session.commit()
        assert outbox.deliver_due({**app.config, **settings}) == 1
    finally:
        controller.stop()
    [(recipients, mail)] = inbox.messages
    assert recipients == ["bob@example.com"]
    assert mail["Subject"] == "Activate your company account"
    assert "Company SSO" in mail["From"]
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "/activate/" in text and 'href="http://sso.test/activate/' in html
    sent = db.session.scalars(db.select(OutboxMessage)).one()
    assert sent.status == outbox.SENT and sent.body_text is None


def _expected_signature(secret_key: str, headers: Any, body: bytes) -> str:
    """The TC3-HMAC-SHA256 signature, computed here from the documented steps."""
    timestamp = int(headers["X-TC-Timestamp"])
    date = dt.datetime.fromtimestamp(timestamp, dt.UTC).date().isoformat()
    canonical = ("POST\n/\n\n"
                 f"content-type:{headers['Content-Type']}\nhost:{headers['Host']}\n"
                 f"x-tc-action:{headers['X-TC-Action'].lower()}\n\n"
                 "content-type;host;x-tc-action\n" + hashlib.sha256(body).hexdigest())
    to_sign = (f"TC3-HMAC-SHA256\n{timestamp}\n{date}/sms/tc3_request\n"
               + hashlib.sha256(canonical.encode()).hexdigest())

    def mac(key: bytes, text: str) -> bytes:
        return hmac.new(key, text.encode(), hashlib.sha256).digest()

    key = mac(mac(mac(b"TC3" + secret_key.encode(), date), "sms"), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


class FakeTencent(BaseHTTPRequestHandler):
    """A local stand-in for sms.tencentcloudapi.com that checks what it is sent."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        auth = self.headers["Authorization"]
        good = auth.endswith("Signature=" + _expected_signature("test-secret-key",
                                                                self.headers, body))
        payload = json.loads(body)
        FakeTencent.received.append({"payload": payload, "auth": auth, "good": good,
                                     "headers": self.headers})
        if not good:
            answer = {"Response": {"Error": {"Code": "AuthFailure.SignatureFailure",
                                             "Message": "bad signature"}}}
        else:
            answer = {"Response": {"SendStatusSet": [{"Code": "Ok", "Message": "send success",
                                                      "PhoneNumber": payload["PhoneNumberSet"][0]}],
                                   "RequestId": "r-1"}}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_tencent() -> Any:
    FakeTencent.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeTencent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_activation_code_through_tencent_sms(app: Any, ctx: None, fake_tencent: str) -> None:
    settings = {"SMS_TRANSPORT": "tencent", "TENCENT_SMS_ENDPOINT": fake_tencent,
                "TENCENT_SMS_SECRET_ID": "AKIDtest", "TENCENT_SMS_SECRET_KEY": "test-secret-key",
                "TENCENT_SMS_APP_ID": "1400000000", "TENCENT_SMS_SIGN_NAME": "公司",
                "TENCENT_SMS_TEMPLATES": '{"activation_code": "1234567"}'}
    lifecycle.invite("chen", phone="13800138000")
    db.session.commit()
    code = db.session.scalars(db.select(OutboxMessage)).one().payload["params"]["code"]
    assert outbox.deliver_due({**app.config, **settings}) == 1
    [request] = FakeTencent.received
    assert request["good"], request["auth"]
    assert request["auth"].startswith("TC3-HMAC-SHA256 Credential=AKIDtest/")
    assert request["headers"]["X-TC-Version"] == "2021-01-11"
    assert request["payload"] == {
        "PhoneNumberSet": ["+8613800138000"], "SmsSdkAppId": "1400000000",
        "SignName": "公司", "TemplateId": "1234567", "TemplateParamSet": [code, "10"]}


def test_refused_sms_is_retried(app: Any, ctx: None, fake_tencent: str) -> None:
    settings = {"SMS_TRANSPORT": "tencent", "TENCENT_SMS_ENDPOINT": fake_tencent,
                "TENCENT_SMS_SECRET_ID": "AKIDtest", "TENCENT_SMS_SECRET_KEY": "wrong-key",
                "TENCENT_SMS_APP_ID": "1400000000", "TENCENT_SMS_SIGN_NAME": "公司",
                "TENCENT_SMS_TEMPLATES": {"activation_code": "1234567"}}
    lifecycle.invite("chen", phone="+8613800138000")
    db.session.commit()
    assert outbox.deliver_due({**app.config, **settings}) == 0
    message = db.session.scalars(db.select(OutboxMessage)).one()
    assert message.status == outbox.PENDING and message.attempts == 1
    assert "SignatureFailure" in message.last_error


def test_e164() -> None:
    assert tencent_sms.e164("13800138000") == "+8613800138000"
    assert tencent_sms.e164("+85291234567") == "+85291234567"
