"""The protocol endpoints answer each kind of bad input with the error code their spec names
(RFC 6749 §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1, RFC 7662 §2.3, OIDC Core §3.1.2.6), on
introspection, revocation, userinfo and the authorization endpoint's redirect."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Flow, basic, query_of

FORM = "application/x-www-form-urlencoded"


def _json_error(response: Any, status: int, error: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.get_json()["error"] == error
    assert "no-store" in response.headers.get("Cache-Control", "")
    if status == 401:
        assert response.headers.get("WWW-Authenticate", "").startswith(("Basic", "Bearer"))


@pytest.mark.parametrize("endpoint", ["/introspect", "/revoke"])
@pytest.mark.parametrize(("how", "status", "error"), [
    ("no client auth", 401, "invalid_client"),
    ("wrong secret", 401, "invalid_client"),
    ("unknown client", 401, "invalid_client"),
    ("malformed basic", 401, "invalid_client"),
    ("no token", 400, "invalid_request"),
    ("duplicated token", 400, "invalid_request"),
    ("json body", 400, "invalid_request"),
    ("two client auth methods", 400, "invalid_request"),
])
def test_introspection_and_revocation_errors(flow: Flow, endpoint: str, how: str, status: int,
                                             error: str) -> None:
    erp = flow.app_client
    headers = basic(erp)
    data: Any = {"token": "whatever"}
    content_type = FORM
    if how == "no client auth":
        headers = {}
    elif how == "wrong secret":
        headers = basic(type("C", (), {"client_id": erp.client_id, "secret": "wrong"})())
    elif how == "unknown client":
        headers = basic(type("C", (), {"client_id": "nobody", "secret": "x"})())
    elif how == "malformed basic":
        headers = {"Authorization": "Basic %%%not-base64"}
    elif how == "no token":
        data = {}
    elif how == "duplicated token":
        data = "token=a&token=b"
    elif how == "json body":
        data, content_type = '{"token": "a"}', "application/json"
    elif how == "two client auth methods":
        data = {"token": "a", "client_id": erp.client_id, "client_secret": erp.secret}
    response = flow.http.post(endpoint, data=data, content_type=content_type, headers=headers)
    _json_error(response, status, error)


@pytest.mark.parametrize(("how", "status", "error"), [
    ("token in header and body", 400, "invalid_request"),
    ("token in query", 400, "invalid_request"),
    ("two authorization schemes", 400, "invalid_request"),
    ("empty bearer", 401, None),
    ("junk token", 401, "invalid_token"),
])
def test_userinfo_errors(flow: Flow, how: str, status: int, error: str | None) -> None:
    """An empty ``Bearer`` carries no credentials: a bare challenge (RFC 6750 §3.1)."""
    token = flow.token(flow.authorize()["code"]).get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    kwargs: dict[str, Any] = {}
    method = "GET"
    if how == "token in header and body":
        method, kwargs = "POST", {"data": {"access_token": token}}
    elif how == "token in query":
        headers, kwargs = {}, {"query_string": {"access_token": token}}
    elif how == "two authorization schemes":
        headers = {"Authorization": f"Basic abc, Bearer {token}"}
    elif how == "empty bearer":
        headers = {"Authorization": "Bearer "}
    elif how == "junk token":
        headers = {"Authorization": "Bearer junk"}
    response = flow.http.open("/userinfo", method=method, headers=headers, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    challenge = response.headers.get("WWW-Authenticate", "")
    assert f'error="{error}"' in challenge if error else "error=" not in challenge


@pytest.mark.parametrize(("override", "error"), [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": "code id_token"}, "unsupported_response_type"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge": "short"}, "invalid_request"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"prompt": "bogus"}, "invalid_request"),
    ({"max_age": "-5"}, "invalid_request"),
    ({"max_age": "abc"}, "invalid_request"),
    ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ({"request_uri": "https://evil.example/r"}, "request_uri_not_supported"),
    ({"registration": "{}"}, "registration_not_supported"),
    ({"state": "x" * 5000}, "invalid_request"),
    ({"nonce": "x" * 5000}, "invalid_request"),
])
def test_authorization_errors_are_redirected_with_the_spec_code(
    flow: Flow, override: dict[str, str], error: str
) -> None:
    params = flow.authorize_params(**override)
    response = flow.http.get("/authorize", query_string=params)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    location = response.headers["Location"]
    assert location.startswith(flow.app_client.redirect_uri), location
    back = query_of(location)
    assert back["error"] == error, back
    assert back.get("iss") == "http://sso.test"


def test_unknown_scopes_are_ignored(flow: Flow) -> None:
    """OIDC Core §3.1.2.1: scope values that are not understood SHOULD be ignored."""
    back = flow.authorize(scope="openid nonsense profile")
    assert flow.token(back["code"]).get_json()["scope"] == "openid profile"


def test_duplicated_authorization_parameters_are_invalid_request(flow: Flow) -> None:
    params = list(flow.authorize_params().items()) + [("scope", "openid email")]
    response = flow.http.get("/authorize", query_string=params)
    assert response.status_code == 302
    assert query_of(response.headers["Location"])["error"] == "invalid_request"


def test_prompt_none_without_a_session_is_login_required(flow: Flow) -> None:
    response = flow.http.get("/authorize", query_string=flow.authorize_params(prompt="none"))
    assert response.status_code == 302
    assert query_of(response.headers["Location"])["error"] == "login_required"
