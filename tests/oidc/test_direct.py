"""The direct requests answered in front of Flask (``sso/oidc/direct.py``) and the same requests
through the Flask routes give the same answers: status, headers and body, errors included.
The bare request is logged, counted and tied to its request id like any other; anything the
layer does not take, or fails on, is answered by Flask."""

from __future__ import annotations

import logging
import re
import secrets
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from flask import Flask

from sso.oidc import direct, endpoints
from sso.oidc.direct import DirectFirst
from tests.conftest import Flow, basic, paths_behind, query_of

#: Keys of a token answer whose values are new on every request.
FRESH = frozenset({"access_token"})


@pytest.fixture
def through_flask(app: Flask, monkeypatch: Any) -> list[str]:
    """The paths the Flask app behind the layer is asked for."""
    return paths_behind(app, DirectFirst, monkeypatch)


def _shape(response: Any, fresh: frozenset[str] = FRESH) -> tuple[int, list[tuple[str, str]], Any]:
    headers = sorted((k, v) for k, v in response.headers.items() if k != "X-Request-Id")
    body = response.get_json()
    if isinstance(body, dict):
        body = {k: (k in fresh) or v for k, v in body.items()}
    return response.status_code, headers, body


@pytest.fixture
def service(make_client: Any) -> Any:
    return make_client("Reports", grant_types=["client_credentials"], scope="reports audit",
                       redirect_uris=[])


def _token_requests(service: Any) -> list[dict[str, Any]]:
    secret_post = {"client_id": service.client_id, "client_secret": service.secret}
    return [
        {"data": {"grant_type": "client_credentials"}, "headers": basic(service)},
        {"data": {"grant_type": "client_credentials", "scope": "reports"},
         "headers": basic(service)},
        {"data": {"grant_type": "client_credentials", **secret_post}},
        {"data": {"grant_type": "client_credentials", "scope": "openid"},
         "headers": basic(service)},
        {"data": {"grant_type": "client_credentials", "scope": "x" * 5000},
         "headers": basic(service)},
        {"data": "grant_type=client_credentials&scope=a&scope=b", "headers": basic(service),
         "content_type": "application/x-www-form-urlencoded"},
        {"data": {"grant_type": "client_credentials", **secret_post},
         "headers": basic(service)},
        {"data": {"grant_type": "client_credentials"},
         "headers": {"Authorization": "Basic bm90OnJpZ2h0"}},
        {"data": {"grant_type": "client_credentials"}, "headers": {"Authorization": "Basic %%"}},
        {"data": {"grant_type": "client_credentials", "client_id": service.client_id,
                  "client_secret": "wrong"}},
        {"data": {"grant_type": "client_credentials"}},
    ]


def test_client_credentials_answer_alike_in_front_and_through_flask(
        app: Flask, service: Any, through_flask: list[str]) -> None:
    bare = app.test_client()
    with_cookie = app.test_client()
    with_cookie.set_cookie("theme", "dark")
    statuses = []
    for request in _token_requests(service):
        fast = bare.post("/token", **request)
        assert through_flask == []
        routed = with_cookie.post("/token", **request)
        assert through_flask == ["/token"]
        del through_flask[:]
        assert _shape(fast) == _shape(routed), request
        statuses.append(fast.status_code)
    assert statuses == [200, 200, 200, 400, 400, 400, 400, 401, 401, 401, 401]
    granted = bare.post("/token", **_token_requests(service)[0])
    assert granted.headers["Access-Control-Allow-Origin"] == "*"
    assert granted.headers["Cache-Control"] == "no-store"
    assert granted.headers["X-Frame-Options"] == "DENY"
    assert granted.get_json()["scope"] == "reports audit"


def test_introspection_answers_alike_in_front_and_through_flask(
        app: Flask, flow: Flow, make_client: Any, through_flask: list[str]) -> None:
    tokens = flow.token(flow.authorize()["code"]).get_json()
    crm = make_client("CRM", redirect_uris=["https://crm.example.com/cb"])
    del through_flask[:]
    bare = app.test_client()
    requests = [
        ({"token": tokens["access_token"]}, basic(flow.app_client)),
        ({"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
         basic(flow.app_client)),
        ({"token": tokens["access_token"]}, basic(crm)),
        ({"token": "garbage"}, basic(flow.app_client)),
        ({"token": tokens["access_token"], "client_id": flow.app_client.client_id,
          "client_secret": flow.app_client.secret}, {}),
        ({"token_type_hint": "access_token"}, basic(flow.app_client)),
        ({"token": "x"}, {}),
        ({"token": "x", "client_id": crm.client_id, "client_secret": crm.secret},
         basic(crm)),
    ]
    answers = []
    for data, headers in requests:
        fast = bare.post("/introspect", data=data, headers=headers)
        assert through_flask == []
        routed = flow.http.post("/introspect", data=data, headers=headers)  # signed in
        assert through_flask == ["/introspect"]
        del through_flask[:]
        assert _shape(fast) == _shape(routed), data
        answers.append((fast.status_code, fast.get_json().get("active")))
    assert answers == [(200, True), (200, True), (200, False), (200, False), (200, True),
                       (400, None), (401, None), (400, None)]


def test_the_bare_request_is_logged_counted_and_keeps_the_request_id(
        app: Flask, service: Any, caplog: Any, through_flask: list[str]) -> None:
    from sso.logs import RequestIdFilter
    from sso.metrics import REQUESTS, TOKENS

    caplog.handler.addFilter(RequestIdFilter())
    answered = REQUESTS.labels("oidc.token", "2xx")._value.get()
    issued = TOKENS.labels("client_credentials")._value.get()
    with caplog.at_level(logging.INFO, logger="sso.access"):
        response = app.test_client().post("/token", data={"grant_type": "client_credentials"},
                                          headers={**basic(service), "X-Request-Id": "lb-77"})
    assert through_flask == [] and response.status_code == 200
    assert response.headers["X-Request-Id"] == "lb-77"
    assert REQUESTS.labels("oidc.token", "2xx")._value.get() == answered + 1
    assert TOKENS.labels("client_credentials")._value.get() == issued + 1
    line, = [r for r in caplog.records if r.name == "sso.access"]
    assert (line.method, line.path, line.status) == ("POST", "/token", 200)
    assert line.request_id == "lb-77"


def _code(flow: Flow) -> dict[str, str]:
    """A fresh code with its verifier and redirect URI, for a token request."""
    code = flow.authorize()["code"]
    return {"grant_type": "authorization_code", "code": code,
            "redirect_uri": flow.params["redirect_uri"], "code_verifier": flow.verifier}


def test_code_and_refresh_grants_answer_alike_in_front_and_through_flask(
        app: Flask, flow: Flow, through_flask: list[str]) -> None:
    """``flow.http`` is signed in (it has cookies): its requests go through Flask."""
    bare = app.test_client()
    auth = basic(flow.app_client)
    wrong_verifier = {"code_verifier": "x" * 43}
    wrong_uri = {"redirect_uri": "https://erp.example.com/other"}
    pairs = []
    for change in ({}, wrong_verifier, wrong_uri):
        fast_code, routed_code = {**_code(flow), **change}, {**_code(flow), **change}
        pairs.append((bare.post("/token", data=fast_code, headers=auth),
                      flow.http.post("/token", data=routed_code, headers=auth)))
    spent = _code(flow)
    assert bare.post("/token", data=spent, headers=auth).status_code == 200
    pairs.append((bare.post("/token", data=spent, headers=auth),  # a code used twice
                  flow.http.post("/token", data=spent, headers=auth)))
    refreshes = [pair.get_json()["refresh_token"] for pair in pairs[0]]
    pairs.append((bare.post("/token", headers=auth, data={
                      "grant_type": "refresh_token", "refresh_token": refreshes[0]}),
                  flow.http.post("/token", headers=auth, data={
                      "grant_type": "refresh_token", "refresh_token": refreshes[1]})))
    unknown = {"grant_type": "refresh_token", "refresh_token": "ssor_unknown"}
    pairs.append((bare.post("/token", headers=auth, data=unknown),
                  flow.http.post("/token", headers=auth, data=unknown)))
    for fast, routed in pairs:
        fresh = FRESH | {"refresh_token", "id_token"}
        assert _shape(fast, fresh) == _shape(routed, fresh), fast.get_json()
    assert [fast.status_code for fast, _ in pairs] == [200, 400, 400, 400, 200, 400]
    assert [fast.get_json().get("error") for fast, _ in pairs][1:4] == ["invalid_grant"] * 3


def test_audit_rows_of_a_bare_request_name_its_caller(app: Flask, flow: Flow) -> None:
    from sqlalchemy import select

    from sso.audit import AuditEvent
    from sso.extensions import db

    data = _code(flow)
    response = app.test_client().post("/token", data=data, headers={
        **basic(flow.app_client), "User-Agent": "erp-backend/2.1", "X-Request-Id": "erp-42"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 200
    with app.app_context():
        row = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "token.issue")
                                 .order_by(AuditEvent.id.desc())).first()
        assert (row.ip, row.user_agent) == ("203.0.113.9", "erp-backend/2.1")
        assert row.request_id == "erp-42"


@pytest.mark.parametrize("request_kwargs", [
    {"data": {"grant_type": "client_credentials"}, "query_string": {"a": "b"}},
    {"data": '{"grant_type": "client_credentials"}', "content_type": "application/json"},
    {"data": "grant_type=client_credentials&scope=%00"},
    {"data": b"grant_type=client_credentials&scope=\xff",
     "content_type": "application/x-www-form-urlencoded"},
    {"data": ""},
])
def test_what_the_layer_does_not_take_goes_to_flask(app: Flask, service: Any,
                                                    request_kwargs: dict[str, Any],
                                                    through_flask: list[str]) -> None:
    request_kwargs.setdefault("content_type", "application/x-www-form-urlencoded")
    response = app.test_client().post("/token", headers=basic(service), **request_kwargs)
    assert through_flask == ["/token"]
    assert response.status_code == 400
    assert response.headers["Cache-Control"] == "no-store"


def _database_down() -> Exception:
    from sqlalchemy.exc import OperationalError

    return OperationalError("SELECT 1", {}, Exception("connection refused"))


@pytest.mark.parametrize(("failure", "status", "error"), [
    (_database_down, 503, "temporarily_unavailable"),
    (lambda: RuntimeError("a defect"), 500, "server_error"),
])
def test_a_failure_is_answered_by_the_apps_error_handlers(
        app: Flask, service: Any, monkeypatch: Any, through_flask: list[str],
        failure: Any, status: int, error: str) -> None:
    def failing(*_args: Any) -> Any:
        raise failure()

    monkeypatch.setitem(direct._ANSWERS, "oidc.token", failing)
    monkeypatch.setattr(endpoints, "token", failing)  # what the Flask route calls
    request = {"data": {"grant_type": "client_credentials"}, "headers": basic(service)}
    fast = app.test_client().post("/token", **request)
    with_cookie = app.test_client()
    with_cookie.set_cookie("theme", "dark")
    routed = with_cookie.post("/token", **request)
    assert through_flask == ["/token"]
    assert _shape(fast) == _shape(routed)
    assert fast.status_code == status and fast.get_json()["error"] == error


@pytest.mark.truncate
def test_introspection_reads_outside_a_transaction_and_sees_revocations(
        app: Flask, flow: Flow, through_flask: list[str]) -> None:
    """With real commits (no test transaction around it), introspection's read runs on a
    connection of its own in autocommit; a revocation committed since is seen at once."""
    access = flow.token(flow.authorize()["code"]).get_json()["access_token"]
    bare = app.test_client()
    auth = basic(flow.app_client)
    assert bare.post("/introspect", data={"token": access},
                     headers=auth).get_json()["active"] is True
    assert bare.post("/revoke", data={"token": access}, headers=auth).status_code == 200
    assert bare.post("/introspect", data={"token": access},
                     headers=auth).get_json() == {"active": False}
    assert through_flask.count("/introspect") == 0


def test_userinfo_answers_alike_in_front_and_through_flask(
        app: Flask, flow: Flow, service: Any, through_flask: list[str]) -> None:
    access = flow.token(flow.authorize()["code"]).get_json()["access_token"]
    service_token = app.test_client().post(
        "/token", data={"grant_type": "client_credentials"},
        headers=basic(service)).get_json()["access_token"]
    del through_flask[:]
    bare = app.test_client()
    bearer = {"Authorization": f"Bearer {access}"}
    requests: list[tuple[str, dict[str, Any]]] = [
        ("GET", {"headers": bearer}),
        ("POST", {"headers": bearer}),
        ("POST", {"data": {"access_token": access}}),
        ("POST", {"data": {"access_token": access}, "headers": bearer}),
        ("GET", {}),
        ("GET", {"headers": {"Authorization": "Bearer "}}),
        ("GET", {"headers": {"Authorization": "Basic eDp5"}}),
        ("GET", {"headers": {"Authorization": "Bearer not-a-token"}}),
        ("GET", {"headers": {"Authorization": f"Bearer {service_token}"}}),
    ]
    answers = []
    for method, kwargs in requests:
        fast = bare.open("/userinfo", method=method, **kwargs)
        routed = flow.http.open("/userinfo", method=method, **kwargs)  # signed in
        assert _shape(fast) == _shape(routed), (method, kwargs)
        answers.append(fast.status_code)
    assert answers == [200, 200, 200, 400, 401, 401, 400, 401, 403]
    # Only a POST without a form body goes on to Flask, and the signed-in browser's requests.
    assert through_flask.count("/userinfo") == len(requests) + 1
    answer = bare.get("/userinfo", headers=bearer)
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert answer.get_json()["sub"] and answer.headers["Cache-Control"] == "no-store"
    refused = bare.get("/userinfo")
    assert refused.headers["WWW-Authenticate"].startswith("Bearer realm=")
    assert bare.get("/userinfo", query_string={"access_token": access}).status_code == 400


# The signed-in authorization, answered in front of Flask when a code is owed.


def _location_shape(response: Any) -> tuple[int, list[tuple[str, str]], str]:
    """A redirect's status, headers and body, with the values new on every answer (the code,
    a pending flow's id and its cookie) left out."""
    location = response.headers.get("Location", "")
    base, _, query = location.partition("?")
    kept = sorted((k, "…" if k in ("code", "flow") else v) for k, v in parse_qsl(query))
    shown = {"Location": f"{base}?{urlencode(kept)}" if query else base}
    headers = sorted((k, shown.get(k) or (re.sub(r"=[^;]*", "=…", v, count=1)
                                          if k == "Set-Cookie" else v))
                     for k, v in response.headers.items() if k != "X-Request-Id")
    body = response.get_data(as_text=True)
    return response.status_code, headers, (body.replace(escape(location), "LOCATION")
                                           if location else body)


@pytest.fixture
def routed(app: Flask, flow: Flow, monkeypatch: Any) -> Any:
    """The signed-in browser's GET of /authorize, made to go through the Flask route."""
    def get(params: dict[str, str]) -> Any:
        with monkeypatch.context() as patched:
            patched.setattr(direct, "_signed_in_authorization", lambda *_args: None)
            return flow.http.get("/authorize", query_string=params)

    return get


def test_a_signed_in_authorization_answers_alike_in_front_and_through_flask(
        app: Flask, flow: Flow, make_client: Any, routed: Any,
        through_flask: list[str]) -> None:
    flow.authorize()  # signs alice in (through Flask: no session yet)
    crm = make_client("CRM", redirect_uris=["https://crm.example.com/cb"])
    del through_flask[:]
    replayed = flow.authorize_params()
    assert flow.http.get("/authorize", query_string=replayed).status_code == 302
    asked = [
        ({}, True),
        ({"state": None, "nonce": None}, True),
        ({"prompt": "none", "max_age": "3600", "ui_locales": "zh-CN"}, True),
        ({"scope": "openid"}, True),
        ({"nonce": replayed["nonce"]}, True),  # a replayed nonce: the error, answered here
        ({"prompt": "login"}, False),
        ({"max_age": "0"}, False),
        ({"prompt": "none", "max_age": "0"}, False),
        ({"redirect_uri": "https://erp.example.com/other"}, False),
        ({"scope": "openid", "response_type": "token"}, False),
        ({"code_challenge_method": "plain"}, False),
        ({"scope": "payroll"}, False),
        ({"client_id": "unknown"}, False),
        ({"client_id": crm.client_id, "redirect_uri": crm.redirect_uri}, False),  # activated
        ({"client_id": crm.client_id, "redirect_uri": crm.redirect_uri}, True),  # then not
    ]
    for overrides, in_front in asked:
        params = flow.authorize_params(**overrides)
        fast = flow.http.get("/authorize", query_string=params)
        assert through_flask == ([] if in_front else ["/authorize"]), overrides
        again = dict(params)  # the same request, with a nonce not used yet if it was
        if "code" in query_of(fast.headers.get("Location", "")) and "nonce" in params:
            again["nonce"] = secrets.token_urlsafe(8)
        assert _location_shape(fast) == _location_shape(routed(again)), overrides
        assert through_flask[-1:] == ["/authorize"]
        del through_flask[:]
    answer = routed(flow.authorize_params())
    assert set(query_of(answer.headers["Location"])) == {"code", "state", "iss"}


def test_a_code_answered_in_front_is_logged_counted_and_audited(
        app: Flask, flow: Flow, caplog: Any, through_flask: list[str]) -> None:
    from sqlalchemy import select

    from sso.audit import AuditEvent
    from sso.extensions import db
    from sso.logs import RequestIdFilter
    from sso.metrics import REQUESTS

    flow.authorize()
    del through_flask[:]
    caplog.handler.addFilter(RequestIdFilter())
    answered = REQUESTS.labels("oidc.authorize", "3xx")._value.get()
    with caplog.at_level(logging.INFO, logger="sso.access"):
        response = flow.http.get("/authorize", query_string=flow.authorize_params(), headers={
            "X-Request-Id": "crm-9", "User-Agent": "Firefox/140"},
            environ_base={"REMOTE_ADDR": "198.51.100.4"})
    assert through_flask == [] and response.status_code == 302
    assert response.headers["X-Request-Id"] == "crm-9"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert REQUESTS.labels("oidc.authorize", "3xx")._value.get() == answered + 1
    line, = [r for r in caplog.records if r.name == "sso.access"]
    assert (line.method, line.path, line.status, line.request_id) == (
        "GET", "/authorize", 302, "crm-9")
    assert flow.token(query_of(response.headers["Location"])["code"]).status_code == 200
    with app.app_context():
        row = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "code.issue")
                                 .order_by(AuditEvent.id.desc())).first()
        assert (row.ip, row.user_agent, row.request_id) == (
            "198.51.100.4", "Firefox/140", "crm-9")


@pytest.mark.parametrize("change", ["duplicate cookie", "nul", "not utf-8", "post", "no query"])
def test_an_authorization_the_layer_does_not_take_goes_to_flask(
        app: Flask, flow: Flow, change: str, through_flask: list[str]) -> None:
    flow.authorize()
    del through_flask[:]
    query = urlencode(flow.authorize_params())
    method, browser, expected = "GET", flow.http, 400
    if change == "duplicate cookie":
        secret = flow.http.get_cookie("sso_session").value
        browser = app.test_client()
        browser.set_cookie("sso_session", secret)
        browser.set_cookie("sso_session", secret, path="/authorize")
    elif change == "nul":
        query += "&login_hint=%00"
    elif change == "not utf-8":
        query += "&login_hint=\xff"  # a raw byte, as WSGI hands it over: not %FF
    elif change == "post":
        method, expected = "POST", 302
    else:
        query = ""
    if method == "POST":
        response = flow.http.post("/authorize", data=query,
                                  content_type="application/x-www-form-urlencoded")
    else:
        response = browser.get("/authorize", environ_overrides={"QUERY_STRING": query})
    assert through_flask == ["/authorize"]
    assert response.status_code == expected


@pytest.mark.parametrize(("failure", "status"), [(_database_down, 503),
                                                 (lambda: RuntimeError("a defect"), 500)])
def test_a_failing_authorization_is_answered_by_the_apps_error_handlers(
        app: Flask, flow: Flow, monkeypatch: Any, routed: Any, through_flask: list[str],
        failure: Any, status: int) -> None:
    from sso.oidc import authorize

    flow.authorize()
    del through_flask[:]

    def failing(*_args: Any) -> Any:
        raise failure()

    monkeypatch.setattr(authorize, "issue", failing)
    params = flow.authorize_params()
    fast = flow.http.get("/authorize", query_string=params)
    assert through_flask == []
    assert _shape(fast) == _shape(routed(params))
    assert fast.status_code == status
