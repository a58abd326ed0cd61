"""Malformed values sent at the moment they are expected: a second-factor code to a real
pending sign-in, a picked number to a real QR code with number matching, a code to the
activation and reset forms, a code_verifier to a real authorization code. Each is refused
cleanly and changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Flow, csrf_of, query_of
from tests.qrlogin.conftest import DESKTOP_UA, PHONE_UA, Desktop, Phone

#: Codes that look numeric to a person but are not six ASCII digits.
ODD_CODES = ["１２３４５６", "١٢٣٤٥٦", "12345\u0660", " " * 10, "9" * 10000, "ab-cd-ef",
             "💥💥💥", "0x1F", "-0", "1e5"]
ODD_NUMBERS = ["abc", "9" * 50, "-1", "1e3", "1.5", "", "１２", "[1]", "null", "true"]


def _enrol(app: Flask) -> None:
    from sso.dbtypes import utcnow
    from sso.extensions import db
    from sso.mfa import service
    from sso.users.service import find_by_login

    with app.app_context():
        user = find_by_login("alice")
        enrolment = service.begin_enrolment(user)
        past = utcnow() - timedelta(seconds=90)
        service.confirm_enrolment(user, enrolment.id, pyotp.TOTP(enrolment.seed).at(past),
                                  origin=None, now=past)
        db.session.commit()


def test_odd_second_factor_codes_are_refused(app: Flask, flow: Flow) -> None:
    _enrol(app)
    flow.params = flow.authorize_params()
    started = flow.http.get("/authorize", query_string=flow.params)
    flow_id = query_of(started.headers["Location"])["flow"]
    page = flow.http.get(flow.login(flow_id=flow_id).headers["Location"])
    while page.status_code == 302:
        page = flow.http.get(page.headers["Location"])
    assert "/mfa/" in page.request.path
    token = csrf_of(page.get_data(as_text=True))
    for code in ODD_CODES:
        response = flow.http.post("/mfa/verify", data={
            "csrf_token": token, "flow": flow_id, "code": code, "remember": code})
        assert response.status_code in (200, 400, 429), (code[:10], response.status_code)
        assert response.mimetype == "text/html"
        assert response.status_code != 302, "an odd code let the sign-in through"


def _pick_on_the_phone(app: Flask, make_client: Any, picks: list[Any]) -> None:
    """For each of ``picks`` (a value, or a function of the code's number), a new QR code
    whose phone approval picks it: each must be refused, and the desktop gets nothing."""
    erp = make_client("ERP", policy={"qr_number_matching": True})
    phone_http = app.test_client()
    phone_http.environ_base["HTTP_USER_AGENT"] = PHONE_UA
    phone = Phone(phone_http)
    phone.sign_in()
    for pick in picks:
        desktop_http = app.test_client()
        desktop_http.environ_base["HTTP_USER_AGENT"] = DESKTOP_UA
        desktop = Desktop(desktop_http, Flow(desktop_http, erp))
        code = desktop.start()
        number = pick if isinstance(pick, str) else pick(str(code["number"]))
        page = phone.open(code["id"])
        response = phone_http.post(f"/qr/s/{code['id']}/approve", data={
            "csrf_token": csrf_of(page.get_data(as_text=True)), "number": number})
        assert response.status_code == 400, (number, response.status_code)
        assert desktop.complete().status_code == 409, number


def test_odd_picked_numbers_cancel_the_qr_sign_in(app: Flask, make_client: Any,
                                                 alice: Any) -> None:
    _pick_on_the_phone(app, make_client, ODD_NUMBERS)


def test_odd_spellings_of_the_right_number_cancel_the_qr_sign_in(
        app: Flask, make_client: Any, alice: Any) -> None:
    """int() reads "１２" (full-width), "1_2" and " 12 " as 12: each of these went through
    whenever the code's number was the one it spells."""
    _pick_on_the_phone(app, make_client, [
        lambda n: n.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
        lambda n: f"{n[0]}_{n[1:]}", lambda n: f" {n} ", lambda n: f"+{n}",
        lambda n: f"{n}.0"])


@pytest.mark.parametrize("path", ["/activate/code", "/password/reset/code"])
def test_odd_message_codes_are_refused(client: FlaskClient, alice: Any, path: str) -> None:
    token = csrf_of(client.get(path).get_data(as_text=True))
    for code in ODD_CODES:
        response = client.post(path, data={"csrf_token": token, "login": "alice", "code": code,
                                           "password": code, "confirm": code})
        assert response.status_code in (400, 429), (code[:10], response.status_code)


def test_odd_code_verifiers_are_invalid_request(flow: Flow) -> None:
    code = flow.authorize()["code"]
    for verifier in ["１" * 50, "a" * 43 + "é", "x" * 200, " "]:
        response = flow.token(code, verifier=verifier)
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_request"
