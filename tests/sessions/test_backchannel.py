"""Back-Channel Logout 1.0 from the provider's side, against a real HTTP receiver: the
logout token validated with an independent JOSE library (joserfc) against the JWKS, retries
when the app fails, nothing for an app without a URI, and the discovery metadata."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
from joserfc import jws, jwt
from joserfc.jwk import KeySet

from tests.conftest import Flow, LiveProvider, csrf_of, free_port, serve_in_thread

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class Receiver:
    """An app's back-channel logout endpoint: records each POST, answers ``statuses`` in
    turn (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.posts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/logout"

    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length).decode()
        with self.lock:
            self.posts.append({"type": environ.get("CONTENT_TYPE"), "form": parse_qs(body),
                               "body": body})
            status = self.statuses.pop(0) if self.statuses else 200
        start_response(f"{status} X", [("Content-Type", "text/plain")])
        return [b""]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver([500])
    server = serve_in_thread(found, found.port)
    yield found
    server.shutdown()


def _client(live: LiveProvider, make_client: Any, receiver: Receiver | None, name: str) -> Any:
    from sso.extensions import db
    from sso.oidc.clients import get, set_logout

    made = make_client(name, [f"https://{name.lower()}.example.com/callback"])
    if receiver is not None:
        with live.app.app_context():
            set_logout(get(made.client_id), backchannel_logout_uri=receiver.url)
            db.session.commit()
    return made


def test_logout_token_reaches_the_app_and_validates_with_joserfc(
        live_provider: LiveProvider, make_user: Any, make_client: Any,
        receiver: Receiver) -> None:
    from sso import outbox
    from sso.extensions import db
    from sso.outbox import DEAD, SENT, OutboxMessage

    make_user("alice")
    erp = _client(live_provider, make_client, receiver, "ERP")
    crm = _client(live_provider, make_client, None, "CRM")  # no URI: nothing is sent to it
    http = live_provider.app.test_client()
    with live_provider.app.app_context():
        Flow(http, erp).authorize()
        Flow(http, crm).authorize()
        sid = _sid_of(live_provider)
    page = http.get("/")
    http.post("/logout/confirm", data={"csrf_token": csrf_of(page.get_data(as_text=True))})

    with live_provider.app.app_context():
        queued = db.session.scalars(db.select(OutboxMessage).where(
            OutboxMessage.channel == "logout")).all()
        assert [m.payload["client_id"] for m in queued] == [erp.client_id]
        token = queued[0].body_text
        # The app answers 500 first: retried with back-off, not lost.
        outbox.deliver_due(live_provider.app.config)
        message = db.session.get(OutboxMessage, queued[0].id)
        assert message.status not in (SENT, DEAD) and message.attempts == 1
        message.next_attempt_at = message.created_at
        db.session.commit()
        outbox.deliver_due(live_provider.app.config)
        assert db.session.get(OutboxMessage, queued[0].id).status == SENT
        db.session.remove()

    assert len(receiver.posts) == 2
    assert receiver.posts[1]["type"] == "application/x-www-form-urlencoded"
    assert receiver.posts[1]["form"]["logout_token"] == [token]

    jwks = requests.get(f"{live_provider.url}/jwks.json", timeout=10).json()
    header = jws.extract_compact(token.encode()).protected
    assert header["typ"] == "logout+jwt"
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["RS256"])
    body = decoded.claims
    assert body["iss"] == live_provider.url and body["aud"] == erp.client_id
    assert body["sid"] == sid and body["sub"]
    assert body["events"] == {LOGOUT_EVENT: {}}
    assert "nonce" not in body and body["jti"]
    assert body["iat"] <= time.time() + 5 < body["exp"]


def _sid_of(live: LiveProvider) -> str:
    """The browser's one SSO session (the ``sid`` of its ID tokens)."""
    from sso.extensions import db
    from sso.sessions.models import SSOSession

    sessions = db.session.scalars(db.select(SSOSession)).all()
    assert len(sessions) == 1 and sessions[0].client_ids
    return str(sessions[0].id)


def test_discovery_advertises_both_channels(live_provider: LiveProvider) -> None:
    meta = requests.get(f"{live_provider.url}/.well-known/openid-configuration",
                        timeout=10).json()
    assert meta["backchannel_logout_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True
    assert meta["frontchannel_logout_supported"] is True
    assert meta["frontchannel_logout_session_supported"] is True


def test_id_token_carries_the_session_id(flow: Flow) -> None:
    answer = flow.authorize()
    tokens = flow.token(answer["code"]).get_json()
    payload = tokens["id_token"].split(".")[1]
    import base64
    import json

    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sid"]


@pytest.mark.parametrize("uri", ["http://example.com/logout", "https://x.example/a#frag",
                                 "ftp://x.example/", "https://user:pw@x.example/"])
def test_a_bad_logout_uri_is_refused(runner: Any, erp: Any, uri: str) -> None:
    from sso.cli import cli

    result = runner.invoke(cli, ["clients", "update", erp.client_id,
                                 "--backchannel-logout-uri", uri])
    assert result.exit_code != 0
    assert "backchannel_logout_uri" in result.output


def test_clients_command_sets_both_channels(runner: Any, erp: Any) -> None:
    import json

    from sso.cli import cli

    result = runner.invoke(cli, [
        "clients", "update", erp.client_id,
        "--backchannel-logout-uri", "https://erp.example.com/bcl",
        "--frontchannel-logout-uri", "https://erp.example.com/fcl",
        "--no-frontchannel-logout-session-required"])
    assert result.exit_code == 0, result.output
    listed = json.loads(runner.invoke(cli, ["clients", "list", "--json"]).output)
    logout = next(c for c in listed if c["client_id"] == erp.client_id)["logout"]
    assert logout == {"backchannel_logout_uri": "https://erp.example.com/bcl",
                      "backchannel_logout_session_required": True,
                      "frontchannel_logout_uri": "https://erp.example.com/fcl",
                      "frontchannel_logout_session_required": False}


def test_subscribed_apps_get_shared_signals_after_the_request(
        live_provider: LiveProvider, make_user: Any, make_client: Any) -> None:
    """CAEP session-revoked (sign-out) and credential-change (password change), RISC
    account-disabled (freeze), pushed to an app with an events endpoint by the loop, never in
    the request that caused them."""
    from sso import outbox
    from sso.cli import cli
    from sso.extensions import db
    from sso.oidc.clients import get, update_policy
    from sso.outbox import PENDING, SENT, OutboxMessage

    app_receiver = Receiver([202] * 10)
    server = serve_in_thread(app_receiver, app_receiver.port)
    try:
        make_user("alice")
        erp = make_client("ERP", ["https://erp.example.com/callback"])
        with live_provider.app.app_context():
            update_policy(get(erp.client_id), events_endpoint=app_receiver.url)
            db.session.commit()
        http = live_provider.app.test_client()
        with live_provider.app.app_context():
            Flow(http, erp).authorize()
        page = http.get("/")
        http.post("/logout/confirm", data={"csrf_token": csrf_of(page.get_data(as_text=True))})
        runner = live_provider.app.test_cli_runner()
        assert runner.invoke(cli, ["users", "freeze", "alice"]).exit_code == 0

        with live_provider.app.app_context():
            rows = db.session.scalars(db.select(OutboxMessage).where(
                OutboxMessage.channel == "event",
                OutboxMessage.purpose.startswith("signal-")).order_by(OutboxMessage.id)).all()
            assert [r.purpose for r in rows] == ["signal-session-revoked",
                                                 "signal-account-disabled"]
            assert all(r.status == PENDING for r in rows)  # the requests did not wait on it
            outbox.deliver_due(live_provider.app.config)
            assert all(db.session.get(OutboxMessage, r.id).status == SENT for r in rows)
            db.session.remove()
        jwks = KeySet.import_key_set(
            requests.get(f"{live_provider.url}/jwks.json", timeout=10).json())
        events = []
        for post in app_receiver.posts:  # the app-account event of the first sign-in, too
            assert post["type"] == "application/secevent+jwt"
            assert jws.extract_compact(post["body"].encode()).protected["typ"] == "secevent+jwt"
            claims = jwt.decode(post["body"], jwks, algorithms=["RS256"]).claims
            assert claims["aud"] == erp.client_id and "nonce" not in claims
            events.extend(claims["events"])
        assert [e for e in events if e.startswith("https://schemas.openid.net/")] == [
            "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
            "https://schemas.openid.net/secevent/risc/event-type/account-disabled"]
    finally:
        server.shutdown()
