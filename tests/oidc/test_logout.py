"""RP-initiated logout (end_session_endpoint)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Flow, basic, csrf_of


@pytest.fixture
def signed_in(flow: Flow) -> dict[str, Any]:
    return flow.token(flow.authorize()["code"]).get_json()  # type: ignore[no-any-return]


def _still_signed_in(flow: Flow) -> bool:
    return flow.http.get("/").status_code == 200


def test_logout_with_id_token_hint_signs_out_and_returns_with_state(
        flow: Flow, signed_in: dict[str, Any]) -> None:
    response = flow.http.get("/logout", query_string={
        "id_token_hint": signed_in["id_token"], "state": "s1",
        "post_logout_redirect_uri": "https://erp.example.com/bye"})
    assert response.status_code == 302
    assert response.headers["Location"] == "https://erp.example.com/bye?state=s1"
    assert not _still_signed_in(flow)
    refreshed = flow.http.post("/token", data={"grant_type": "refresh_token",
                                               "refresh_token": signed_in["refresh_token"]},
                               headers=basic(flow.app_client))
    assert refreshed.get_json()["error"] == "invalid_grant"
    # The next authorization asks for a password again.
    response = flow.http.get("/authorize", query_string=flow.authorize_params())
    assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("uri", ["https://evil.example.com/bye", "https://erp.example.com/bye/",
                                 "https://erp.example.com/callback"])
def test_unregistered_post_logout_redirect_uri_is_never_followed(
        flow: Flow, signed_in: dict[str, Any], uri: str) -> None:
    response = flow.http.get("/logout", query_string={
        "id_token_hint": signed_in["id_token"], "post_logout_redirect_uri": uri})
    assert response.status_code == 400 and "Location" not in response.headers
    assert _still_signed_in(flow)


def test_post_logout_uri_without_a_client_is_refused(flow: Flow, signed_in: dict[str, Any]
                                                     ) -> None:
    response = flow.http.get("/logout", query_string={
        "post_logout_redirect_uri": "https://erp.example.com/bye"})
    assert response.status_code == 400


def test_logout_with_client_id_asks_for_confirmation_first(flow: Flow, erp: Any,
                                                           signed_in: dict[str, Any]) -> None:
    params = {"client_id": erp.client_id, "post_logout_redirect_uri":
              "https://erp.example.com/bye", "state": "s2"}
    page = flow.http.get("/logout", query_string=params)
    assert page.status_code == 200 and _still_signed_in(flow)
    html = page.get_data(as_text=True)
    assert "ERP" in html
    without_csrf = flow.http.post("/logout/confirm", data=params)
    assert without_csrf.status_code == 400 and _still_signed_in(flow)
    response = flow.http.post("/logout/confirm", data={**params, "csrf_token": csrf_of(html)})
    assert response.headers["Location"] == "https://erp.example.com/bye?state=s2"
    assert not _still_signed_in(flow)


def test_a_cross_site_post_only_shows_the_confirmation(flow: Flow,
                                                       signed_in: dict[str, Any]) -> None:
    response = flow.http.post("/logout", data={})
    assert response.status_code == 200 and _still_signed_in(flow)


def test_hint_and_client_id_must_agree(flow: Flow, signed_in: dict[str, Any],
                                       make_client: Any) -> None:
    crm = make_client("CRM", redirect_uris=["https://crm.example.com/cb"])
    response = flow.http.get("/logout", query_string={"id_token_hint": signed_in["id_token"],
                                                      "client_id": crm.client_id})
    assert response.status_code == 400


@pytest.mark.parametrize("hint", ["garbage", "a.b.c", "x" * 5000])
def test_a_forged_hint_is_refused(flow: Flow, signed_in: dict[str, Any], hint: str) -> None:
    response = flow.http.get("/logout", query_string={"id_token_hint": hint})
    assert response.status_code == 400 and _still_signed_in(flow)


def test_logout_without_a_session_still_returns_to_the_app(flow: Flow, erp: Any) -> None:
    response = flow.http.get("/logout", query_string={
        "client_id": erp.client_id, "post_logout_redirect_uri": "https://erp.example.com/bye"})
    assert response.headers["Location"] == "https://erp.example.com/bye"


def test_logout_without_redirect_shows_a_signed_out_page(flow: Flow,
                                                         signed_in: dict[str, Any]) -> None:
    response = flow.http.get("/logout", query_string={"id_token_hint": signed_in["id_token"]})
    assert response.status_code == 200 and not _still_signed_in(flow)


def test_the_session_cookie_is_cleared(flow: Flow, signed_in: dict[str, Any]) -> None:
    response = flow.http.get("/logout", query_string={"id_token_hint": signed_in["id_token"]})
    cookies = response.headers.getlist("Set-Cookie")
    assert any(c.startswith("sso_session=;") for c in cookies)


def test_the_first_login_in_a_browser_does_not_reuse_the_old_sid(flow: Flow,
                                                                 signed_in: dict[str, Any],
                                                                 app: Any) -> None:
    from sso.oidc.keys import decode_jws

    flow.http.get("/logout", query_string={"id_token_hint": signed_in["id_token"]})
    again = flow.token(flow.authorize()["code"]).get_json()
    with app.app_context():
        keys = app.extensions["sso_keys"]
        assert decode_jws(keys, again["id_token"])["sid"] != decode_jws(
            keys, signed_in["id_token"])["sid"]
