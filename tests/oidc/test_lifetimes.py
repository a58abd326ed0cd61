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
