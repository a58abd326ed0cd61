"""The authorization endpoint: what it redirects, what it refuses to redirect, and prompts."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import func, select

from sso.audit import AuditEvent
from sso.extensions import db
from tests.conftest import ISSUER, PASSWORD, Flow, csrf_of, query_of, resumed


def _get(flow: Flow, **overrides: Any) -> Any:
    params = flow.authorize_params(**overrides)
    flow.params = params
    return flow.http.get("/authorize", query_string=params)


def _error_redirect(response: Any, flow: Flow) -> dict[str, str]:
    response = resumed(flow.http, response)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    location = response.headers["Location"]
    assert location.startswith(flow.app_client.redirect_uri)
    query = query_of(location)
    assert query["iss"] == ISSUER
    assert query["state"] == flow.params["state"]
    return query


@pytest.mark.parametrize("overrides", [
    {"client_id": "no-such-client"},
    {"client_id": None},
    {"client_id": "bad client id with spaces"},
    {"redirect_uri": "https://evil.example.com/callback"},
    {"redirect_uri": "https://erp.example.com/callback/"},
    {"redirect_uri": "https://erp.example.com/callback?x=1"},
    {"redirect_uri": "https://erp.example.com/callback\"\\"},
])
def test_unknown_client_or_redirect_uri_shows_a_page_and_never_redirects(
        flow: Flow, overrides: dict[str, Any]) -> None:
    response = _get(flow, **overrides)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "text/html" in response.content_type


def test_duplicated_redirect_uri_is_not_trusted(flow: Flow) -> None:
    params = flow.authorize_params()
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = flow.http.get(f"/authorize?{query}&redirect_uri=https://evil.example.com/cb")
    assert response.status_code == 400
    assert "Location" not in response.headers


@pytest.mark.parametrize(("overrides", "error"), [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": "code id_token"}, "unsupported_response_type"),
    ({"response_type": None}, "invalid_request"),
    ({"response_mode": "fragment"}, "invalid_request"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"prompt": "sideways"}, "invalid_request"),
    ({"max_age": "-1"}, "invalid_request"),
    ({"max_age": "soon"}, "invalid_request"),
    ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ({"request_uri": "https://erp.example.com/req"}, "request_uri_not_supported"),
    ({"scope": "unknown-scope"}, "invalid_scope"),
    ({"nonce": "n" * 300}, "invalid_request"),
    ({"id_token_hint": "not-a-token"}, "invalid_request"),
    ({"login_hint": "x" * 5000}, "invalid_request"),
])
def test_bad_requests_from_a_known_client_go_back_with_the_error(
        flow: Flow, overrides: dict[str, Any], error: str) -> None:
    query = _error_redirect(_get(flow, **overrides), flow)
    assert query["error"] == error
    assert "code" not in query


def test_repeated_parameter_is_refused(flow: Flow) -> None:
    params = flow.authorize_params()
    flow.params = params
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = flow.http.get(f"/authorize?{query}&scope=openid")
    assert _error_redirect(response, flow)["error"] == "invalid_request"


def test_client_not_allowed_the_code_grant_is_unauthorized(make_client: Any, client: Any,
                                                           alice: Any) -> None:
    service = make_client("Batch", grant_types=["client_credentials"], scope="reports",
                          redirect_uris=["https://batch.example.com/cb"])
    flow = Flow(client, service)
    query = _error_redirect(_get(flow), flow)
    assert query["error"] == "unauthorized_client"


def test_unknown_scopes_are_ignored_and_known_ones_granted(flow: Flow) -> None:
    result = flow.authorize(scope="openid email frobnicate")
    body = flow.token(result["code"]).get_json()
    assert body["scope"] == "openid email"


def test_without_a_session_the_user_is_sent_to_sign_in(flow: Flow) -> None:
    response = _get(flow)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?flow=")
    page = flow.http.get(response.headers["Location"])
    assert "ERP" in page.get_data(as_text=True)


def test_prompt_none_without_session_answers_login_required(flow: Flow) -> None:
    query = _error_redirect(_get(flow, prompt="none"), flow)
    assert query["error"] == "login_required"


def test_prompt_none_with_session_issues_a_code_silently(flow: Flow) -> None:
    flow.authorize()
    response = _get(flow, prompt="none")
    assert response.status_code == 302
    query = query_of(response.headers["Location"])
    assert "code" in query and query["iss"] == ISSUER


def test_a_signed_in_user_gets_a_code_without_a_page(flow: Flow) -> None:
    flow.authorize()
    response = _get(flow)
    assert response.status_code == 302
    assert "code" in query_of(response.headers["Location"])


def test_prompt_login_asks_again_even_with_a_session(flow: Flow) -> None:
    flow.authorize()
    response = _get(flow, prompt="login")
    assert response.headers["Location"].startswith("/login?flow=")
    flow_id = query_of(response.headers["Location"])["flow"]
    resumed = flow.login(flow_id=flow_id)
    resumed = flow.http.get(resumed.headers["Location"])
    assert "code" in query_of(resumed.headers["Location"])


def test_max_age_zero_asks_again_and_auth_time_is_fresh(flow: Flow, app: Any) -> None:
    first = flow.authorize()
    first_tokens = flow.token(first["code"]).get_json()
    second = flow.authorize(max_age="0")
    second_tokens = flow.token(second["code"]).get_json()
    with app.app_context():
        from sso.oidc.keys import decode_jws

        keys = app.extensions["sso_keys"]
        before = decode_jws(keys, first_tokens["id_token"])["auth_time"]
        after = decode_jws(keys, second_tokens["id_token"])["auth_time"]
    assert after >= before


def test_large_max_age_does_not_ask_again(flow: Flow) -> None:
    flow.authorize()
    response = _get(flow, max_age="3600")
    assert "code" in query_of(response.headers["Location"])


def test_id_token_hint_for_another_user_asks_to_sign_in(flow: Flow, make_user: Any,
                                                         app: Any) -> None:
    make_user("bob")
    result = flow.authorize(username="bob")
    bob_id_token = flow.token(result["code"]).get_json()["id_token"]
    flow.http = app.test_client()
    flow.authorize()  # alice signs in, in another browser
    response = _get(flow, id_token_hint=bob_id_token, prompt="none")
    assert _error_redirect(response, flow)["error"] == "login_required"


def test_authorize_by_post_works(flow: Flow) -> None:
    flow.authorize()
    params = flow.authorize_params()
    flow.params = params
    response = flow.http.post("/authorize", data=params)
    assert "code" in query_of(response.headers["Location"])


def test_cancel_on_the_sign_in_page_tells_the_app_access_denied(flow: Flow) -> None:
    response = _get(flow)
    flow_id = query_of(response.headers["Location"])["flow"]
    page = flow.http.get(response.headers["Location"])
    cancelled = flow.http.post("/authorize/cancel", data={
        "csrf_token": csrf_of(page.get_data(as_text=True)), "flow": flow_id})
    query = _error_redirect(cancelled, flow)
    assert query["error"] == "access_denied"


@pytest.mark.parametrize("flow_id", ["", "unknown", "x" * 300])
def test_resume_with_an_unknown_flow_shows_a_page(flow: Flow, flow_id: str) -> None:
    response = flow.http.get(f"/authorize/resume?flow={flow_id}")
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_a_flow_id_is_worthless_in_another_browser(flow: Flow, app: Any) -> None:
    response = _get(flow)
    flow_id = query_of(response.headers["Location"])["flow"]
    other_browser = app.test_client()
    page = other_browser.get(f"/login?flow={flow_id}")
    assert page.status_code == 400


def test_each_tab_resumes_its_own_app(flow: Flow, make_client: Any) -> None:
    crm = make_client("CRM", redirect_uris=["https://crm.example.com/callback"])
    erp_start = _get(flow)
    crm_flow = Flow(flow.http, crm)
    crm_start = _get(crm_flow)
    erp_flow_id = query_of(erp_start.headers["Location"])["flow"]
    crm_flow_id = query_of(crm_start.headers["Location"])["flow"]
    assert erp_flow_id != crm_flow_id
    landed = flow.http.get(flow.login(flow_id=erp_flow_id).headers["Location"])
    assert landed.headers["Location"].startswith("https://erp.example.com/callback")
    resumed = flow.http.get(f"/authorize/resume?flow={crm_flow_id}")
    assert resumed.headers["Location"].startswith("https://crm.example.com/callback")


def test_code_is_bound_to_the_redirect_uri_it_was_issued_for(make_client: Any, client: Any,
                                                             alice: Any) -> None:
    app_client = make_client("Two", redirect_uris=["https://two.example.com/a",
                                                   "https://two.example.com/b"])
    flow = Flow(client, app_client)
    result = flow.authorize(redirect_uri="https://two.example.com/b")
    response = flow.token(result["code"], redirect_uri="https://two.example.com/a")
    assert response.get_json()["error"] == "invalid_grant"


def test_login_page_prefills_login_hint(flow: Flow) -> None:
    response = _get(flow, login_hint="alice@example.com")
    page = flow.http.get(response.headers["Location"]).get_data(as_text=True)
    assert 'value="alice@example.com"' in page


def test_ui_locales_picks_the_page_language(flow: Flow) -> None:
    response = _get(flow, ui_locales="zh-CN en")
    page = flow.http.get(response.headers["Location"]).get_data(as_text=True)
    assert "登录" in page


def test_wrong_password_keeps_the_flow(flow: Flow) -> None:
    response = _get(flow)
    flow_id = query_of(response.headers["Location"])["flow"]
    failed = flow.login(password="wrong-" + PASSWORD, flow_id=flow_id)
    assert failed.status_code == 200
    assert flow_id in failed.get_data(as_text=True)


def test_a_redirect_uri_with_a_query_keeps_it_and_gets_the_issuer_once(
        client: Any, make_client: Any, alice: Any) -> None:
    """RFC 6749 §3.1.2: the registered URI's own query is kept; RFC 9207: ``iss`` once, last,
    in the same encoding as the rest (the code's redirect appends it to what Authlib built)."""
    from authlib.common.urls import add_params_to_uri

    registered = "https://erp.example.com/callback?tenant=north&team=a+b&path=%2Fx%3Fy"
    flow = Flow(client, make_client("ERP", redirect_uris=[registered]))
    assert "code" in flow.authorize()  # signs alice in
    response = flow.http.get("/authorize", query_string=flow.authorize_params(state="a b/c"))
    assert response.status_code == 302
    location = response.headers["Location"]
    query = parse_qs(urlsplit(location).query)
    assert query["tenant"] == ["north"] and query["team"] == ["a b"]
    assert query["path"] == ["/x?y"] and query["state"] == ["a b/c"]
    assert query["iss"] == [ISSUER] and location.endswith("&" + urlencode({"iss": ISSUER}))
    without_issuer = location.rsplit("&iss=", 1)[0]
    assert location == add_params_to_uri(without_issuer, [("iss", ISSUER)])


@pytest.mark.truncate  # real commits, on the connections the app holds
@pytest.mark.parametrize("signed_in", [False, True])
def test_an_error_sent_back_to_the_app_is_audited(flow: Flow, app: Any,
                                                   signed_in: bool) -> None:
    """Refused before anything was read (a response type not supported) and after the flow
    decided (``prompt=none`` that needs a sign-in), by a browser without a session and by a
    signed-in one: the audit row is committed with the redirect, on the connections the app
    holds."""
    if signed_in:
        flow.authorize()
    errors = select(func.count()).select_from(AuditEvent).where(
        AuditEvent.event == "authorize.error")
    with app.app_context():
        before = db.session.scalar(errors)
    for _ in range(2):  # the second time, the client comes from the worker's cache
        assert _error_redirect(_get(flow, response_type="token"), flow)["error"] == (
            "unsupported_response_type")
    assert _error_redirect(_get(flow, prompt="none", max_age="0"), flow)["error"] == (
        "login_required")
    with app.app_context():
        assert db.session.scalar(errors) == before + 3
