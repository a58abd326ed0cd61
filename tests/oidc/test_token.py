"""The token endpoint: codes, PKCE, client authentication and bad requests."""

from __future__ import annotations

import base64
import threading
from typing import Any

import pytest

from tests.conftest import Flow, basic, pkce_pair, query_of


def _error(response: Any, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == error, body
    assert response.headers["Cache-Control"] == "no-store"
    return body


def test_code_is_single_use_and_a_replay_revokes_its_tokens(flow: Flow) -> None:
    code = flow.authorize()["code"]
    first = flow.token(code)
    assert first.status_code == 200
    tokens = first.get_json()
    _error(flow.token(code), 400, "invalid_grant")
    userinfo = flow.http.get("/userinfo",
                             headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status_code == 401
    refreshed = flow.http.post("/token", data={"grant_type": "refresh_token",
                                               "refresh_token": tokens["refresh_token"]},
                               headers=basic(flow.app_client))
    _error(refreshed, 400, "invalid_grant")


@pytest.mark.truncate  # threads: each commits on its own connection
def test_concurrent_redemptions_of_one_code_never_both_succeed(flow: Flow, app: Any) -> None:
    code = flow.authorize()["code"]
    statuses: list[int] = []
    barrier = threading.Barrier(4)

    def redeem() -> None:
        http = app.test_client()
        barrier.wait()
        response = http.post("/token", data={
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": flow.params["redirect_uri"], "code_verifier": flow.verifier,
        }, headers=basic(flow.app_client))
        statuses.append(response.status_code)

    threads = [threading.Thread(target=redeem) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 400, 400, 400]


def test_expired_code_is_invalid_grant(flow: Flow, app: Any) -> None:
    code = flow.authorize()["code"]
    with app.app_context():
        from datetime import timedelta

        from sso.dbtypes import utcnow
        from sso.extensions import db
        from sso.oidc.models import AuthorizationCode

        db.session.execute(db.update(AuthorizationCode).values(
            expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    _error(flow.token(code), 400, "invalid_grant")


def test_a_code_whose_user_was_disabled_gets_no_tokens_and_stays_unused(flow: Flow,
                                                                        app: Any) -> None:
    from sso.extensions import db
    from sso.users.service import find_by_login

    def set_status(status: str) -> None:
        with app.app_context():
            find_by_login("alice").status = status
            db.session.commit()

    code = flow.authorize()["code"]
    set_status("disabled")
    body = _error(flow.token(code), 400, "invalid_grant")
    assert "user" in body["error_description"] or "code" in body["error_description"]
    set_status("active")
    assert flow.token(code).status_code == 200  # the refusal did not burn the code


def test_code_of_another_client_is_invalid_grant(flow: Flow, make_client: Any) -> None:
    code = flow.authorize()["code"]
    crm = make_client("CRM", redirect_uris=[flow.app_client.redirect_uri])
    response = flow.http.post("/token", data={
        "grant_type": "authorization_code", "code": code,
        "redirect_uri": flow.params["redirect_uri"], "code_verifier": flow.verifier,
    }, headers=basic(crm))
    _error(response, 400, "invalid_grant")
    # The stolen code was not burnt for its rightful owner.
    assert flow.token(code).status_code == 200


@pytest.mark.parametrize(("extra", "error"), [
    ({"redirect_uri": "https://erp.example.com/other"}, "invalid_grant"),
    ({"redirect_uri": None}, "invalid_grant"),
    ({"code_verifier": None}, "invalid_request"),
    ({"code_verifier": "x" * 43}, "invalid_grant"),
    ({"code_verifier": "short"}, "invalid_request"),
    ({"code": "not-a-code"}, "invalid_grant"),
    ({"code": None}, "invalid_request"),
])
def test_bad_code_exchanges(flow: Flow, extra: dict[str, Any], error: str) -> None:
    code = flow.authorize()["code"]
    extra = dict(extra)
    _error(flow.token(extra.pop("code", code), **extra), 400, error)


@pytest.mark.parametrize(("headers", "data"), [
    ({"Authorization": "Basic " + base64.b64encode(b"nobody:secret").decode()}, {}),
    ({"Authorization": "Basic !!!notbase64"}, {}),
    ({"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()}, {}),
    ({"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}, {}),
    ({}, {"client_id": "nobody", "client_secret": "secret"}),
    ({}, {}),
])
def test_failed_client_authentication_is_401_with_a_challenge(
        flow: Flow, headers: dict[str, str], data: dict[str, str]) -> None:
    response = flow.http.post("/token", data={"grant_type": "client_credentials", **data},
                              headers=headers)
    _error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_wrong_secret_is_invalid_client(flow: Flow) -> None:
    raw = f"{flow.app_client.client_id}:wrong".encode()
    response = flow.http.post("/token", data={"grant_type": "client_credentials"},
                              headers={"Authorization": "Basic " + base64.b64encode(raw).decode()})
    _error(response, 401, "invalid_client")


def test_client_secret_post_is_accepted(flow: Flow) -> None:
    code = flow.authorize()["code"]
    response = flow.http.post("/token", data={
        "grant_type": "authorization_code", "code": code,
        "redirect_uri": flow.params["redirect_uri"], "code_verifier": flow.verifier,
        "client_id": flow.app_client.client_id, "client_secret": flow.app_client.secret,
    })
    assert response.status_code == 200


def test_two_authentication_methods_at_once_are_refused(flow: Flow) -> None:
    response = flow.http.post("/token", data={
        "grant_type": "client_credentials", "client_id": flow.app_client.client_id,
        "client_secret": flow.app_client.secret}, headers=basic(flow.app_client))
    _error(response, 400, "invalid_request")


def test_basic_credentials_are_form_decoded(make_client: Any, client: Any) -> None:
    service = make_client("Svc", grant_types=["client_credentials"], scope="reports",
                          client_id="svc.with~chars", redirect_uris=[])
    from urllib.parse import quote

    raw = f"{quote(service.client_id, safe='')}:{quote(service.secret, safe='')}".encode()
    response = client.post("/token", data={"grant_type": "client_credentials"},
                           headers={"Authorization": "Basic " + base64.b64encode(raw).decode()})
    assert response.status_code == 200


@pytest.mark.parametrize(("kwargs", "status", "error"), [
    ({"content_type": "application/json", "data": '{"grant_type":"client_credentials"}'},
     400, "invalid_request"),
    ({"query_string": {"grant_type": "client_credentials"}, "data": {}}, 400, "invalid_request"),
    ({"data": {"grant_type": "password", "username": "a", "password": "b"}},
     400, "unsupported_grant_type"),
    ({"data": {"grant_type": "implicit"}}, 400, "unsupported_grant_type"),
    ({"data": {}}, 400, "invalid_request"),
    ({"data": {"scope": "openid"}}, 400, "invalid_request"),
    ({"data": {"grant_type": "client_credentials", "scope": "x" * 5000}}, 400, "invalid_request"),
])
def test_malformed_token_requests(flow: Flow, kwargs: dict[str, Any], status: int,
                                  error: str) -> None:
    response = flow.http.post("/token", headers=basic(flow.app_client), **kwargs)
    _error(response, status, error)


def test_repeated_parameter_is_invalid_request(flow: Flow) -> None:
    response = flow.http.post(
        "/token", data="grant_type=client_credentials&grant_type=client_credentials",
        content_type="application/x-www-form-urlencoded", headers=basic(flow.app_client))
    _error(response, 400, "invalid_request")


def test_token_endpoint_accepts_only_post(flow: Flow) -> None:
    assert flow.http.get("/token").status_code == 405


def test_client_without_a_grant_is_unauthorized_client(flow: Flow) -> None:
    response = flow.http.post("/token", data={"grant_type": "client_credentials"},
                              headers=basic(flow.app_client))
    _error(response, 400, "unauthorized_client")


# PKCE.


@pytest.fixture
def spa(make_client: Any) -> Any:
    return make_client("SPA", public=True, redirect_uris=["http://127.0.0.1:8080/cb"],
                       first_party=True)


def test_public_client_completes_the_flow_with_pkce_and_no_secret(client: Any, spa: Any,
                                                                  alice: Any) -> None:
    flow = Flow(client, spa)
    code = flow.authorize()["code"]
    response = client.post("/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": spa.client_id,
        "redirect_uri": spa.redirect_uri, "code_verifier": flow.verifier})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("overrides", [
    {"code_challenge": None, "code_challenge_method": None},
    {"code_challenge_method": "plain"},
    {"code_challenge_method": None},
    {"code_challenge": "too-short"},
])
def test_public_client_without_s256_is_refused_at_authorize(client: Any, spa: Any, alice: Any,
                                                            overrides: dict[str, Any]) -> None:
    flow = Flow(client, spa)
    params = flow.authorize_params(**overrides)
    response = client.get("/authorize", query_string=params)
    assert response.status_code == 302
    assert query_of(response.headers["Location"])["error"] == "invalid_request"


def test_confidential_client_may_skip_pkce(flow: Flow) -> None:
    code = flow.authorize(code_challenge=None, code_challenge_method=None)["code"]
    response = flow.http.post("/token", data={
        "grant_type": "authorization_code", "code": code,
        "redirect_uri": flow.params["redirect_uri"]}, headers=basic(flow.app_client))
    assert response.status_code == 200


def test_verifier_without_a_challenge_is_refused(flow: Flow) -> None:
    code = flow.authorize(code_challenge=None, code_challenge_method=None)["code"]
    verifier, _ = pkce_pair()
    _error(flow.token(code, verifier=verifier), 400, "invalid_request")


def test_a_client_made_public_must_prove_its_code_with_a_verifier(flow: Flow,
                                                                   app: Any) -> None:
    """RFC 7636 §4.6 as Authlib's PKCE extension applies it: a public client always sends
    a verifier, even for a code asked for without a challenge while it was confidential."""
    from sso.extensions import db
    from sso.oidc.models import Client

    code = flow.authorize(code_challenge=None, code_challenge_method=None)["code"]
    with app.app_context():
        db.session.get(Client, flow.app_client.client_id).token_endpoint_auth_method = "none"
        db.session.commit()
    response = flow.http.post("/token", data={
        "grant_type": "authorization_code", "code": code,
        "client_id": flow.app_client.client_id, "redirect_uri": flow.params["redirect_uri"]})
    body = _error(response, 400, "invalid_request")
    assert "code_verifier" in body["error_description"]


def test_public_client_cannot_use_a_secret_it_does_not_have(client: Any, spa: Any,
                                                            alice: Any) -> None:
    flow = Flow(client, spa)
    code = flow.authorize()["code"]
    response = client.post("/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": spa.client_id,
        "client_secret": "guess", "redirect_uri": spa.redirect_uri,
        "code_verifier": flow.verifier})
    _error(response, 401, "invalid_client")


def test_confidential_client_must_authenticate(flow: Flow) -> None:
    code = flow.authorize()["code"]
    response = flow.http.post("/token", data={
        "grant_type": "authorization_code", "code": code,
        "client_id": flow.app_client.client_id, "redirect_uri": flow.params["redirect_uri"],
        "code_verifier": flow.verifier})
    _error(response, 401, "invalid_client")


# client_credentials.


@pytest.fixture
def service(make_client: Any) -> Any:
    return make_client("Reports", grant_types=["client_credentials"],
                       scope="reports.read reports.write openid", redirect_uris=[])


def test_client_credentials_issues_a_jwt_for_the_client(client: Any, service: Any,
                                                        app: Any) -> None:
    response = client.post("/token", data={"grant_type": "client_credentials",
                                           "scope": "reports.read"}, headers=basic(service))
    assert response.status_code == 200
    body = response.get_json()
    assert body["scope"] == "reports.read"
    assert "refresh_token" not in body and "id_token" not in body
    with app.app_context():
        from sso.oidc.keys import decode_jws

        claims = decode_jws(app.extensions["sso_keys"], body["access_token"], typ="at+jwt")
    assert claims["sub"] == service.client_id == claims["client_id"]


def test_client_credentials_default_scope_excludes_user_scopes(client: Any,
                                                               service: Any) -> None:
    body = client.post("/token", data={"grant_type": "client_credentials"},
                       headers=basic(service)).get_json()
    assert body["scope"] == "reports.read reports.write"


@pytest.mark.parametrize("scope", ["openid", "admin", "reports.read admin"])
def test_client_credentials_refuses_scopes_not_registered(client: Any, service: Any,
                                                          scope: str) -> None:
    response = client.post("/token", data={"grant_type": "client_credentials",
                                           "scope": scope}, headers=basic(service))
    _error(response, 400, "invalid_scope")


def _exchange(app: Any, flow: Flow, code: str) -> Any:
    return app.test_client().post("/token", data={
        "grant_type": "authorization_code", "code": code,
        "redirect_uri": flow.params["redirect_uri"], "code_verifier": flow.verifier,
    }, headers=basic(flow.app_client))


def _events(app: Any, event: str) -> int:
    from sqlalchemy import func, select

    from sso.audit import AuditEvent
    from sso.extensions import db

    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(AuditEvent)
                                     .where(AuditEvent.event == event)))


@pytest.mark.parametrize("wrong", [{"code_verifier": "v" * 43},
                                   {"redirect_uri": "https://erp.example.com/other"},
                                   {"redirect_uri": None}])
def test_an_exchange_refused_by_its_checks_writes_nothing_and_keeps_the_code(
        flow: Flow, app: Any, wrong: dict[str, Any]) -> None:
    """On PostgreSQL the one statement that claims the code checks the redirect URI and the
    verifier in its ``WHERE`` and writes nothing when they fail; the answer is the error
    the checks give (``grants._refused``)."""
    code = flow.authorize()["code"]
    data = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": flow.params["redirect_uri"], "code_verifier": flow.verifier}
    data.update(wrong)
    sent = {name: value for name, value in data.items() if value is not None}
    body = _error(flow.http.post("/token", data=sent, headers=basic(flow.app_client)),
                  400, "invalid_grant")
    assert body["error_description"] in ("Code challenge failed.",
                                         "Invalid 'redirect_uri' in request.")
    assert _events(app, "token.issue") == 0
    assert _events(app, "code.replay") == 0
    assert _exchange(app, flow, code).status_code == 200
    assert _events(app, "token.issue") == 1
