"""Cookie tossing (RFC 10027): a page on a sibling subdomain sets its own copy of the
provider's cookie with a longer path, so the browser sends it first. Every cookie is
``__Host-`` on https, two cookies of one name are refused, and a form token only verifies in
the SSO session it was minted in."""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any

import pytest
from flask import Flask

from sso import create_app
from tests.conftest import PASSWORD, Flow, csrf_of
from tests.qrlogin.conftest import Desktop, Phone


@pytest.fixture
def https_app(app_config: dict[str, Any]) -> Flask:
    return create_app({**app_config, "ISSUER": "https://sso.test"})


def _set_cookies(response: Any) -> list[tuple[str, str]]:
    return [(header.split("=", 1)[0], header) for header in response.headers.getlist("Set-Cookie")]


def test_every_cookie_is_host_prefixed_on_https(https_app: Flask, erp: Any, alice: Any) -> None:
    http = https_app.test_client()
    http.environ_base["wsgi.url_scheme"] = "https"
    seen: list[tuple[str, str]] = []
    flow = Flow(http, erp)
    response = http.get("/authorize", query_string=flow.authorize_params(),
                        base_url="https://sso.test")
    seen += _set_cookies(response)
    page = http.get(response.headers["Location"], base_url="https://sso.test")
    seen += _set_cookies(page)
    qr_page = http.get(response.headers["Location"].replace("/login", "/qr/login"),
                       base_url="https://sso.test")
    created = http.post("/qr/sessions", base_url="https://sso.test",
                        data={"flow": response.headers["Location"].split("flow=")[1]},
                        headers={"X-CSRF-Token": csrf_of(qr_page.get_data(as_text=True))})
    assert created.status_code == 201, created.get_data(as_text=True)
    seen += _set_cookies(created)
    signed_in = http.post("/login", base_url="https://sso.test", data={
        "csrf_token": csrf_of(page.get_data(as_text=True)), "username": "alice",
        "password": PASSWORD, "flow": response.headers["Location"].split("flow=")[1]})
    seen += _set_cookies(signed_in)
    seen += _set_cookies(http.get("/lang/zh-CN", base_url="https://sso.test"))
    names = {name for name, _header in seen}
    assert {"__Host-sso_flow", "__Host-sso_session", "__Host-lang"} <= names, names
    assert any(name.startswith("__Host-sso_qr-") for name in names), names
    for name, header in seen:
        cookie = SimpleCookie()
        cookie.load(header)
        morsel = cookie[name]
        assert name.startswith("__Host-"), header
        assert morsel["secure"] and morsel["path"] == "/" and not morsel["domain"], header


def test_two_cookies_of_one_name_are_refused(client: Any) -> None:
    client.set_cookie("lang", "en", path="/")
    assert client.get("/login").status_code == 200
    client.set_cookie("lang", "zh-CN", path="/login")  # a sibling's copy, sent first
    response = client.get("/login")
    assert response.status_code == 400
    assert "two cookies with the same name" in response.get_data(as_text=True)


def test_a_form_token_from_another_session_is_refused(app: Flask, desktop: Desktop,
                                                      phone: Phone, make_user: Any) -> None:
    """The attacker's own flow cookie (and the token in it) planted in the victim's browser:
    the token was minted in the attacker's session, so it does not verify in hers."""
    make_user("mallory")
    attacker = app.test_client()
    Phone(attacker).sign_in("mallory")
    code = desktop.start()  # the attacker's desktop, for the victim to approve unknowingly
    token = csrf_of(attacker.get("/").get_data(as_text=True))
    flow_cookie = attacker.get_cookie("sso_flow")
    assert flow_cookie is not None
    phone.open(code["id"])
    phone.http.set_cookie("sso_flow", flow_cookie.value)  # tossed over the victim's own
    forged = phone.http.post(f"/qr/s/{code['id']}/approve", data={"csrf_token": token})
    assert forged.status_code == 400
    assert "approved" not in forged.get_data(as_text=True).lower()
    with app.app_context():
        assert app.extensions["sso_qr_store"].get(code["id"]).state == "scanned"
