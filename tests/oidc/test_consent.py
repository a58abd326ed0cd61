"""Consent for third-party apps, remembered per user, client and scopes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Flow, csrf_of, query_of, resumed


@pytest.fixture
def third_party(make_client: Any) -> Any:
    return make_client("Partner Portal", first_party=False,
                       redirect_uris=["https://partner.example.com/cb"])


def _to_consent(flow: Flow, **overrides: Any) -> Any:
    flow.params = flow.authorize_params(**overrides)
    response = flow.http.get("/authorize", query_string=flow.params)
    if response.headers["Location"].startswith("/login"):
        flow_id = query_of(response.headers["Location"])["flow"]
        response = flow.http.get(flow.login(flow_id=flow_id).headers["Location"])
    return response


def _decide(flow: Flow, location: str, decision: str) -> Any:
    """Answer the consent page; return the redirect that goes back to the app."""
    page = flow.http.get(location)
    assert page.status_code == 200
    response = flow.http.post("/consent", data={
        "csrf_token": csrf_of(page.get_data(as_text=True)),
        "flow": query_of(location)["flow"], "decision": decision})
    response = resumed(flow.http, response)
    assert response.status_code == 302
    assert response.headers["Location"].startswith(flow.app_client.redirect_uri)
    return response


def test_third_party_asks_once_then_remembers(client: Any, third_party: Any,
                                              alice: Any) -> None:
    flow = Flow(client, third_party)
    response = _to_consent(flow)
    assert response.headers["Location"].startswith("/consent")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Partner Portal" in page and "email" in page.lower()
    allowed = _decide(flow, response.headers["Location"], "allow")
    assert "code" in query_of(allowed.headers["Location"])
    again = _to_consent(flow)
    assert "code" in query_of(again.headers["Location"])


def test_a_new_scope_asks_again(client: Any, third_party: Any, alice: Any) -> None:
    flow = Flow(client, third_party)
    first = _to_consent(flow, scope="openid")
    _decide(flow, first.headers["Location"], "allow")
    second = _to_consent(flow, scope="openid email")
    assert second.headers["Location"].startswith("/consent")


def test_deny_tells_the_app_access_denied(client: Any, third_party: Any, alice: Any) -> None:
    flow = Flow(client, third_party)
    response = _to_consent(flow)
    denied = _decide(flow, response.headers["Location"], "deny")
    query = query_of(denied.headers["Location"])
    assert query["error"] == "access_denied" and query["state"] == flow.params["state"]


def test_prompt_consent_asks_even_when_remembered(client: Any, third_party: Any,
                                                  alice: Any) -> None:
    flow = Flow(client, third_party)
    _decide(flow, _to_consent(flow).headers["Location"], "allow")
    again = _to_consent(flow, prompt="consent")
    assert again.headers["Location"].startswith("/consent")
    allowed = _decide(flow, again.headers["Location"], "allow")
    assert "code" in query_of(allowed.headers["Location"])


def test_prompt_none_without_consent_is_consent_required(client: Any, third_party: Any,
                                                         alice: Any) -> None:
    flow = Flow(client, third_party)
    first = _to_consent(flow)
    assert first.headers["Location"].startswith("/consent")
    silent = _to_consent(flow, prompt="none")
    assert query_of(silent.headers["Location"])["error"] == "consent_required"


def test_first_party_apps_skip_consent(flow: Flow) -> None:
    assert "code" in flow.authorize()


def test_consent_page_without_a_flow_is_a_readable_error(client: Any) -> None:
    assert client.get("/consent?flow=nope").status_code == 400
