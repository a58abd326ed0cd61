"""Security Event Tokens pushed to a real HTTP recipient that verifies them against the JWKS."""

from __future__ import annotations

import socket
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from sso import outbox
from sso.apps import events
from sso.dbtypes import utcnow
from sso.extensions import db
from sso.outbox import OutboxMessage
from tests.apps.conftest import app_result, run_flow
from tests.apps.set_receiver import Receiver
from tests.conftest import ISSUER, Flow, csrf_of, free_port


def _event_messages(app: Any) -> list[dict[str, Any]]:
    with app.app_context():
        rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "event")
                                  .order_by(OutboxMessage.id)).all()
        return [{"status": m.status, "attempts": m.attempts, "jti": m.payload["jti"],
                 "purpose": m.purpose, "error": m.last_error} for m in rows]


def _later(app: Any) -> int:
    with app.app_context():
        return outbox.deliver_due(app.config, now=utcnow() + timedelta(hours=2))


def test_activation_set_arrives_before_the_user_lands_and_verifies(
        app: Any, client: FlaskClient, alice: Any, make_app: Any, receiver: Receiver) -> None:
    erp = make_app("auto", receiver.url)
    receiver.audience = erp.client_id
    flow = Flow(client, erp)
    result = app_result(run_flow(flow), flow)
    # The redirect to the app has not been followed yet, and the app already has the event.
    assert "code" in result and len(receiver.accepted) == 1
    claims = receiver.accepted[0]
    assert claims["iss"] == ISSUER and claims["aud"] == erp.client_id
    assert claims["sub"] == alice.subject
    assert claims["sub_id"] == {"format": "iss_sub", "iss": ISSUER, "sub": alice.subject}
    assert isinstance(claims["iat"], int) and claims["jti"] and "exp" not in claims
    payload = claims["events"][events.ACTIVATED]
    assert payload["status"] == "active" and payload["via"] == "auto"
    assert payload["user"]["sub"] == alice.subject
    assert payload["user"]["preferred_username"] == "alice"
    assert payload["user"]["roles"] == []
    assert _event_messages(app) == [{"status": "sent", "attempts": 1, "jti": claims["jti"],
                                     "purpose": "app-activated", "error": None}]
    header = receiver.headers[0]
    assert header["typ"] == "secevent+jwt" and header["alg"] == "RS256" and header["kid"]


def test_a_failing_app_gets_the_same_set_again_later(
        app: Any, client: FlaskClient, alice: Any, make_app: Any, receiver: Receiver) -> None:
    erp = make_app("auto", receiver.url)
    receiver.audience = erp.client_id
    receiver.script = [503]
    flow = Flow(client, erp)
    assert "code" in app_result(run_flow(flow), flow)  # the user is not held up
    [pending] = _event_messages(app)
    assert pending["status"] == "pending" and pending["attempts"] == 1
    assert "503" in pending["error"]
    assert _later(app) == 1
    assert [c["jti"] for c in receiver.accepted] == [pending["jti"]]
    assert _event_messages(app)[0]["status"] == "sent"


def test_an_app_that_is_down_gets_it_when_it_is_back(
        app: Any, client: FlaskClient, alice: Any, make_app: Any) -> None:
    port = free_port()
    http = app.test_client()
    down = Receiver(jwks=lambda: http.get("/jwks.json").get_json(), issuer=ISSUER,
                    audience="")
    erp = make_app("auto", f"http://127.0.0.1:{port}/events")
    down.audience = erp.client_id
    flow = Flow(client, erp)
    assert "code" in app_result(run_flow(flow), flow)
    assert _later(app) == 0
    [pending] = _event_messages(app)
    assert pending["status"] == "pending" and pending["attempts"] == 2
    back = down.start(port)
    try:
        assert _later(app) == 1
        assert [c["jti"] for c in back.accepted] == [pending["jti"]]
    finally:
        back.stop()


def test_a_set_the_app_refuses_is_not_retried(
        app: Any, client: FlaskClient, alice: Any, make_app: Any, receiver: Receiver) -> None:
    erp = make_app("auto", receiver.url)
    receiver.audience = "someone-else"
    flow = Flow(client, erp)
    assert "code" in app_result(run_flow(flow), flow)
    [dead] = _event_messages(app)
    assert dead["status"] == "dead" and "invalid_audience" in dead["error"]
    assert receiver.refused == ["invalid_audience"]
    assert _later(app) == 0 and receiver.requests == 1


def test_a_forged_set_fails_verification(app: Any, receiver: Receiver) -> None:
    from sso.oidc.keys import SigningKey, encode_jws, generate

    stranger = SigningKey("stranger", "RS256", "active", generate("RS256"))
    forged = encode_jws(stranger, {"iss": ISSUER, "aud": "x", "events": {}}, typ="secevent+jwt")
    try:
        receiver.verify(forged)
    except ValueError as error:
        assert str(error) == "invalid_key"
    else:
        raise AssertionError("a forged SET verified")


def test_admin_decisions_are_pushed_at_once(
        app: Any, runner: Any, alice: Any, make_app: Any, receiver: Receiver) -> None:
    from sso.cli import cli

    erp = make_app("approval", receiver.url)
    receiver.audience = erp.client_id
    for command, event in (("approve", events.ACTIVATED), ("revoke", events.REVOKED),
                           ("deny", events.REFUSED)):
        result = runner.invoke(cli, ["apps", command, erp.client_id, "alice"])
        assert result.exit_code == 0, result.output
        assert list(receiver.accepted[-1]["events"]) == [event]
    assert len(receiver.accepted) == 3
    assert receiver.accepted[0]["events"][events.ACTIVATED]["via"] == "approval"


def test_a_third_party_app_learns_nothing_before_consent(
        app: Any, client: FlaskClient, alice: Any, make_app: Any, receiver: Receiver) -> None:
    erp = make_app("auto", receiver.url, name="Partner", first_party=False)
    receiver.audience = erp.client_id
    flow = Flow(client, erp)
    page = run_flow(flow)
    assert page.status_code == 200 and "wants to access your account" in page.get_data(
        as_text=True)
    assert receiver.accepted == [] and _event_messages(app) == []
    answer = client.post("/consent", data={"csrf_token": csrf_of(page.get_data(as_text=True)),
                                           "flow": page.request.args["flow"],
                                           "decision": "deny"})
    assert app_result(answer, flow)["error"] == "access_denied"
    assert receiver.accepted == [] and _event_messages(app) == []
    page = run_flow(flow)
    answer = client.post("/consent", data={"csrf_token": csrf_of(page.get_data(as_text=True)),
                                           "flow": page.request.args["flow"],
                                           "decision": "allow"})
    assert "code" in app_result(answer, flow)
    assert [list(c["events"]) for c in receiver.accepted] == [[events.ACTIVATED]]


def test_a_hanging_app_does_not_hold_the_user(app: Any, client: FlaskClient, alice: Any,
                                              make_app: Any) -> None:
    """The endpoint accepts the connection and never answers: after SSO_EVENTS_TIMEOUT the
    user goes on, and the event waits in the outbox for its next try."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    before = app.config["EVENTS_TIMEOUT"]
    app.config["EVENTS_TIMEOUT"] = 0.5
    try:
        erp = make_app("auto", f"http://127.0.0.1:{silent.getsockname()[1]}/events")
        flow = Flow(client, erp)
        assert "code" in app_result(run_flow(flow), flow)
    finally:
        app.config["EVENTS_TIMEOUT"] = before
        silent.close()
    [pending] = _event_messages(app)
    assert pending["status"] == "pending" and pending["attempts"] == 1
    assert "timed out" in pending["error"]


def test_a_given_up_event_can_be_redelivered_once_the_app_is_fixed(
        app: Any, client: FlaskClient, runner: Any, alice: Any, make_app: Any,
        receiver: Receiver) -> None:
    from sso.cli import cli

    erp = make_app("auto", receiver.url)
    receiver.audience = "misconfigured"
    flow = Flow(client, erp)
    assert "code" in app_result(run_flow(flow), flow)
    [dead] = _event_messages(app)
    assert dead["status"] == "dead"
    listed = runner.invoke(cli, ["apps", "events", erp.client_id, "--status", "dead"]).output
    assert "app-activated" in listed and "invalid_audience" in listed
    message_id = listed.split()[0]
    receiver.audience = erp.client_id
    result = runner.invoke(cli, ["apps", "redeliver", message_id])
    assert result.exit_code == 0 and "sent" in result.output, result.output
    assert [c["jti"] for c in receiver.accepted] == [dead["jti"]]
    again = runner.invoke(cli, ["apps", "redeliver", message_id])
    assert again.exit_code != 0 and "not dead" in again.output
    assert runner.invoke(cli, ["apps", "redeliver", "999999"]).exit_code != 0
    assert runner.invoke(cli, ["apps", "events", "other-app"]).output == ""
