"""Per-app token lifetimes: an app's own access, ID and refresh token lifetimes win over the
settings in ``expires_in``, the JWTs' ``exp``, introspection and refresh-token expiry, at no
extra statement on the token path."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import Flow, basic
from tests.perf.test_statements import statements

LIFETIMES = {"access_token_ttl": 120, "id_token_ttl": 300, "refresh_token_ttl": 3600}


@pytest.fixture
def short(make_client: Any) -> Any:
    return make_client("Kiosk", ["https://kiosk.example.com/cb"], lifetimes=LIFETIMES)


@pytest.fixture
def kiosk(client: FlaskClient, short: Any, alice: Any) -> Flow:
    return Flow(client, short)


def _claims(app: Flask, token: str) -> dict[str, Any]:
    from sso.oidc.keys import decode_jws

    with app.app_context():
        return decode_jws(app.extensions["sso_keys"], token)  # type: ignore[no-any-return]


def _refresh_row(app: Flask, client_id: str) -> Any:
    from sso.extensions import db
    from sso.oidc.models import RefreshToken

    with app.app_context():
        row = db.session.scalars(select(RefreshToken).where(
            RefreshToken.client_id == client_id).order_by(RefreshToken.id.desc())).first()
        db.session.expunge(row)
        return row


def test_the_apps_lifetimes_shape_every_token(app: Flask, kiosk: Flow, short: Any) -> None:
    answer = kiosk.token(kiosk.authorize(scope="openid profile")["code"])
    body = answer.get_json()
    assert body["expires_in"] == 120
    access = _claims(app, body["access_token"])
    assert access["exp"] == access["iat"] + 120
    id_token = _claims(app, body["id_token"])
    assert id_token["exp"] == id_token["iat"] + 300
    row = _refresh_row(app, short.client_id)
    assert row.expires_at - row.created_at == timedelta(seconds=3600)
    seen = kiosk.http.post("/introspect", data={"token": body["access_token"]},
                           headers=basic(short)).get_json()
    assert seen["active"] is True and seen["exp"] == access["iat"] + 120
    # A refresh answers with the app's lifetimes too.
    again = kiosk.http.post("/token", data={"grant_type": "refresh_token",
                                            "refresh_token": body["refresh_token"]},
                            headers=basic(short)).get_json()
    assert again["expires_in"] == 120
    renewed = _refresh_row(app, short.client_id)
    assert renewed.expires_at - renewed.created_at == timedelta(seconds=3600)


def test_offline_refresh_tokens_follow_the_apps_lifetime(app: Flask, kiosk: Flow,
                                                         short: Any) -> None:
    body = kiosk.token(kiosk.authorize(scope="openid offline_access")["code"]).get_json()
    assert "refresh_token" in body
    row = _refresh_row(app, short.client_id)
    # Not the 30 days of OFFLINE_REFRESH_TOKEN_TTL.
    assert row.session_id is None
    assert row.expires_at - row.created_at == timedelta(seconds=3600)


def test_an_app_without_lifetimes_keeps_the_settings(app: Flask, flow: Flow) -> None:
    body = flow.token(flow.authorize()["code"]).get_json()
    assert body["expires_in"] == app.config["ACCESS_TOKEN_TTL"]
    access = _claims(app, body["access_token"])
    assert access["exp"] - access["iat"] == app.config["ACCESS_TOKEN_TTL"]


def test_lifetimes_cost_no_statement(client: FlaskClient, make_client: Any) -> None:
    import base64

    def issue(app_client: Any) -> tuple[dict[str, Any], list[str]]:
        pair = base64.b64encode(f"{app_client.client_id}:{app_client.secret}".encode())
        headers = {"Authorization": "Basic " + pair.decode()}
        client.post("/token", data={"grant_type": "client_credentials"}, headers=headers)
        with statements() as seen:
            answer = client.post("/token", data={"grant_type": "client_credentials"},
                                 headers=headers)
        return answer.get_json(), seen

    plain = make_client("Batch", [], grant_types=["client_credentials"], scope="api")
    own = make_client("Batch 2", [], grant_types=["client_credentials"], scope="api",
                      lifetimes={"access_token_ttl": 90})
    body, seen = issue(own)
    assert body["expires_in"] == 90
    assert seen == issue(plain)[1] == []


@pytest.mark.parametrize("values, says", [
    ({"access_token_ttl": 59}, "access token lifetime: 60 to 86400 seconds"),
    ({"id_token_ttl": 86401}, "ID token lifetime: 60 to 86400 seconds"),
    ({"refresh_token_ttl": 366 * 86400}, "refresh token lifetime: 60 to 31536000 seconds"),
    ({"access_token_ttl": True}, "access token lifetime"),
    ({"ttl": 100}, "unknown lifetime"),
])
def test_lifetimes_out_of_bounds_are_refused(app: Flask, values: dict[str, Any],
                                             says: str) -> None:
    from sso.oidc.clients import ClientError, create_client

    with app.app_context(), pytest.raises(ClientError, match=says):
        create_client("X", ["https://x.example.com/cb"], lifetimes=values)


def test_no_app_lifetime_outlives_a_retired_signing_key(app: Flask,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from sso.oidc.clients import ClientError, create_client

    monkeypatch.setitem(app.config, "KEY_RETIREMENT_GRACE", 3600)
    with app.app_context(), pytest.raises(ClientError, match="60 to 3600 seconds"):
        create_client("X", ["https://x.example.com/cb"], lifetimes={"access_token_ttl": 7200})


# A refresh token's lifetime within its grant's bounds: on PostgreSQL the code's exchange
# writes the grant's first refresh token in SQL (``tokens.refresh_expiry``), on SQLite in
# Python (``TokenService.new_refresh_token``), and a refresh always in Python. These hold
# both to the same rule.


def _session_of(app: Flask) -> Any:
    from sso.extensions import db
    from sso.sessions.models import SSOSession

    with app.app_context():
        session = db.session.scalars(select(SSOSession).order_by(
            SSOSession.created_at.desc())).first()
        db.session.expunge(session)
        return session


def test_a_refresh_token_lives_its_lifetime_within_a_longer_session(app: Flask,
                                                                    flow: Flow) -> None:
    body = flow.token(flow.authorize(scope="openid")["code"]).get_json()
    row = _refresh_row(app, flow.app_client.client_id)
    session = _session_of(app)
    assert row.session_id == session.id
    # REFRESH_TOKEN_TTL (a day) ends after the session (SSO_SESSION_TTL, twelve hours).
    assert row.expires_at == session.expires_at
    renewed = _refresh_row_after(app, flow, body["refresh_token"])
    assert renewed.expires_at == session.expires_at


def test_a_refresh_token_ends_with_its_session_or_its_lifetime(app: Flask, flow: Flow,
                                                               monkeypatch: Any) -> None:
    monkeypatch.setattr(app.extensions["sso_tokens"], "refresh_ttl", 600)
    body = flow.token(flow.authorize(scope="openid")["code"]).get_json()
    row = _refresh_row(app, flow.app_client.client_id)
    assert row.expires_at - row.created_at == timedelta(seconds=600)
    assert row.expires_at < _session_of(app).expires_at
    renewed = _refresh_row_after(app, flow, body["refresh_token"])
    assert renewed.expires_at - renewed.created_at == timedelta(seconds=600)


def test_an_offline_refresh_token_lives_its_lifetime_up_to_the_offline_maximum(
        app: Flask, flow: Flow, monkeypatch: Any) -> None:
    service = app.extensions["sso_tokens"]
    body = flow.token(flow.authorize(scope="openid offline_access")["code"]).get_json()
    row = _refresh_row(app, flow.app_client.client_id)
    assert row.session_id is None
    assert row.expires_at - row.created_at == timedelta(seconds=service.offline_ttl)
    # Capped: never past the sign-in that began the grant plus SSO_OFFLINE_MAX_DAYS.
    monkeypatch.setattr(service, "offline_max", timedelta(hours=2, seconds=0.5))
    body = flow.token(flow.authorize(scope="offline_access openid")["code"]).get_json()
    row = _refresh_row(app, flow.app_client.client_id)
    assert row.expires_at == row.auth_time + timedelta(hours=2, seconds=0.5)
    renewed = _refresh_row_after(app, flow, body["refresh_token"])
    assert renewed.expires_at == row.auth_time + timedelta(hours=2, seconds=0.5)


def test_a_code_of_an_ended_session_gets_no_refresh_token_but_an_offline_one(
        app: Flask, flow: Flow) -> None:
    from sqlalchemy import update

    from sso.extensions import db
    from sso.sessions.models import SSOSession

    online = flow.authorize(scope="openid")["code"], flow.verifier
    offline = flow.authorize(scope="openid offline_access")["code"], flow.verifier
    with app.app_context():
        db.session.execute(update(SSOSession).values(ended_at=SSOSession.created_at))
        db.session.commit()
    online_answer = flow.token(*online).get_json()
    assert "access_token" in online_answer and "refresh_token" not in online_answer
    assert "refresh_token" in flow.token(*offline).get_json()
    assert _refresh_row(app, flow.app_client.client_id).session_id is None


def _refresh_row_after(app: Flask, flow: Flow, refresh_token: str) -> Any:
    answer = flow.http.post("/token", data={"grant_type": "refresh_token",
                                            "refresh_token": refresh_token},
                            headers=basic(flow.app_client))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return _refresh_row(app, flow.app_client.client_id)
