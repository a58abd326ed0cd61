"""The whole QR sign-in through the test client: desktop code, phone approval, app code."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sso.cli import cli
from tests.conftest import Flow
from tests.oidc.test_id_token import _verify
from tests.qrlogin.conftest import Desktop, Phone


def _subject(app: Any, username: str) -> str:
    from sso.extensions import db
    from sso.users.models import User

    with app.app_context():
        return db.session.scalar(db.select(User.subject).where(User.username == username))


def test_phone_approves_and_desktop_lands_in_the_app(desktop: Desktop, phone: Phone,
                                                     app: Any) -> None:
    code = desktop.start()
    page = phone.open(code["id"])
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "ERP" in html and "Chrome on Windows" in html and "127.0.0.1" in html
    assert phone.approve(code["id"]).status_code == 200
    back = desktop.follow_to_app(desktop.complete())
    assert back["code"]
    tokens = desktop.flow.token(back["code"]).get_json()
    claims = _verify(desktop.http, tokens["id_token"], "RS256")
    assert claims["sub"] == _subject(app, "alice")
    assert claims["amr"] == ["qr"]


def _events(app: Any, kind: str) -> list[Any]:
    from sso.audit import AuditEvent
    from sso.extensions import db

    with app.app_context():
        rows = db.session.scalars(db.select(AuditEvent).where(AuditEvent.event == kind)).all()
        return [(r.outcome, r.user_id, r.ip, dict(r.details)) for r in rows]


def test_every_transition_is_audited_with_both_devices(desktop: Desktop, phone: Phone,
                                                       app: Any, alice: Any) -> None:
    code = desktop.start()
    phone.approve(code["id"])
    desktop.complete()
    for kind in ("qr.create", "qr.scan", "qr.approve", "qr.consume"):
        [(outcome, _user, ip, details)] = _events(app, kind)
        assert outcome == "success", kind
        assert details["desktop_ip"] == "127.0.0.1" and "Windows" in details["desktop_ua"]
        if kind != "qr.create":
            assert details["phone_ip"] == "10.0.0.7" and "Pixel 7" in details["phone_ua"]
    assert _events(app, "qr.approve")[0][2] == "10.0.0.7"
    assert _events(app, "qr.consume")[0][1] == alice.id


def test_the_desktop_secret_is_an_httponly_cookie_never_in_the_qr(desktop: Desktop,
                                                                  app: Any) -> None:
    desktop.flow.params = desktop.flow.authorize_params()
    page = desktop.http.get("/qr/login")
    from tests.conftest import csrf_of

    response = desktop.http.post("/qr/sessions", headers={
        "X-CSRF-Token": csrf_of(page.get_data(as_text=True))})
    cookie = response.headers["Set-Cookie"]
    secret = cookie.split(";")[0].split("=", 1)[1]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert f"Path=/qr/sessions/{response.get_json()['id']}" in cookie
    svg = desktop.http.get(response.get_json()["image_url"])
    assert svg.mimetype == "image/svg+xml" and secret not in svg.get_data(as_text=True)
    assert secret not in response.get_data(as_text=True)


def test_whoever_photographs_the_code_cannot_complete(desktop: Desktop, phone: Phone,
                                                      app: Any) -> None:
    code = desktop.start()
    phone.approve(code["id"])
    photographer = app.test_client()
    page = photographer.get("/qr/login")
    from tests.conftest import csrf_of

    response = photographer.post(f"/qr/sessions/{code['id']}/complete",
                                 data={"csrf_token": csrf_of(page.get_data(as_text=True))})
    assert response.status_code == 409
    assert "another browser" in response.get_data(as_text=True)
    assert photographer.get(f"/qr/sessions/{code['id']}/qr.svg").status_code == 404
    assert "sso_session" not in (response.headers.get("Set-Cookie") or "")
    assert desktop.follow_to_app(desktop.complete())["code"]  # the real desktop still can


def test_complete_without_approval_or_twice(desktop: Desktop, phone: Phone) -> None:
    code = desktop.start()
    early = desktop.complete()
    assert early.status_code == 409 and "not been approved" in early.get_data(as_text=True)
    phone.open(code["id"])
    assert desktop.complete().status_code == 409
    phone.approve(code["id"])
    assert desktop.complete().status_code == 302
    again = desktop.complete()
    assert again.status_code in (404, 409)
    assert "sso_session" not in (again.headers.get("Set-Cookie") or "")


def test_approve_by_another_user_than_the_scanner(desktop: Desktop, phone: Phone, app: Any,
                                                  make_user: Any) -> None:
    from tests.qrlogin.conftest import Phone as PhoneClass

    make_user("bob")
    bob = PhoneClass(app.test_client())
    bob.sign_in("bob")
    code = desktop.start()
    assert bob.open(code["id"]).status_code == 200  # bob scanned first
    page = phone.open(code["id"])
    assert page.status_code == 409 and "another account" in page.get_data(as_text=True)
    from tests.conftest import csrf_of

    csrf = csrf_of(phone.http.get("/qr/login").get_data(as_text=True))
    refused = phone.http.post(f"/qr/s/{code['id']}/approve", data={"csrf_token": csrf})
    assert refused.status_code == 409
    assert desktop.complete().status_code == 409


def test_approve_twice_and_cancel(desktop: Desktop, phone: Phone) -> None:
    code = desktop.start()
    page = phone.open(code["id"])
    from tests.conftest import csrf_of

    csrf = csrf_of(page.get_data(as_text=True))
    assert phone.http.post(f"/qr/s/{code['id']}/approve", data={"csrf_token": csrf}
                           ).status_code == 200
    again = phone.http.post(f"/qr/s/{code['id']}/approve", data={"csrf_token": csrf})
    assert again.status_code == 409 and "already been used" in again.get_data(as_text=True)
    assert phone.open(code["id"]).status_code == 409
    second = desktop.new_code()
    assert phone.deny(second["id"]).status_code == 200
    assert desktop.complete(second["id"]).status_code == 409
    assert phone.open(second["id"]).status_code == 409


@pytest.mark.parametrize("qr_id", ["nope", "A" * 22, "%2e%2e", "A" * 200])
def test_unknown_and_malformed_codes_on_the_phone(phone: Phone, qr_id: str) -> None:
    response = phone.open(qr_id)
    assert response.status_code == 404
    assert "expired or is not valid" in response.get_data(as_text=True)


def test_a_phone_session_that_is_too_old_must_sign_in_again(desktop: Desktop, phone: Phone,
                                                            app: Any) -> None:
    from datetime import timedelta

    from sso.extensions import db
    from sso.sessions.models import SSOSession

    code = desktop.start()
    with app.app_context():
        for row in db.session.scalars(db.select(SSOSession)).all():
            row.auth_time = row.auth_time - timedelta(seconds=app.config["QR_PHONE_MAX_AGE"] + 60)
        db.session.commit()
    response = phone.open(code["id"])
    assert response.status_code == 302
    assert response.headers["Location"] == f"/login?next=/qr/s/{code['id']}"
    again = Flow(phone.http, None).login(next_path=f"/qr/s/{code['id']}")
    assert again.headers["Location"] == f"/qr/s/{code['id']}"
    assert phone.approve(code["id"]).status_code == 200


def test_a_phone_that_is_not_signed_in_signs_in_and_comes_back(desktop: Desktop, app: Any
                                                               ) -> None:
    code = desktop.start()
    fresh = Phone(app.test_client())
    response = fresh.open(code["id"])
    assert response.status_code == 302
    assert response.headers["Location"] == f"/login?next=/qr/s/{code['id']}"
    page = fresh.http.get(response.headers["Location"]).get_data(as_text=True)
    # The phone is the device that approves: no "continue to ...", no scan tab, no cancel.
    assert "Scan to sign in" not in page and "Cancel and return" not in page
    assert "to continue to" not in page
    signed_in = Flow(fresh.http, None).login(next_path=f"/qr/s/{code['id']}")
    assert signed_in.headers["Location"] == f"/qr/s/{code['id']}"
    assert fresh.approve(code["id"]).status_code == 200


def test_too_many_codes_from_one_address(desktop: Desktop, app: Any) -> None:
    desktop.start()
    limit = int(app.config["RATE_LIMIT_QR_CREATE_IP"].split("/")[0])
    statuses = [desktop.http.post("/qr/sessions", headers={"X-CSRF-Token": desktop.csrf}
                                  ).status_code for _ in range(limit)]
    assert statuses[-1] == 429 and statuses.count(201) == limit - 1


def test_creating_a_code_needs_the_csrf_token(desktop: Desktop) -> None:
    desktop.start()
    assert desktop.http.post("/qr/sessions").status_code == 400


def test_number_matching_per_app(desktop: Desktop, phone: Phone, app: Any, erp: Any,
                                 runner: Any) -> None:
    result = runner.invoke(cli, ["qr", "number-matching", erp.client_id, "--on"])
    assert result.exit_code == 0, result.output
    code = desktop.start()
    assert code["number"] is not None
    page = phone.open(code["id"]).get_data(as_text=True)
    choices = [int(n) for n in re.findall(r'name="number" value="(\d+)"', page)]
    assert len(choices) == 3 and code["number"] in choices
    wrong = next(c for c in choices if c != code["number"])
    assert phone.approve(code["id"], wrong).status_code == 400
    assert desktop.complete().status_code == 409
    second = desktop.new_code()
    assert phone.approve(second["id"], second["number"]).status_code == 200
    assert desktop.follow_to_app(desktop.complete(second["id"]))["code"]
    assert runner.invoke(cli, ["qr", "number-matching", erp.client_id, "--off"]).exit_code == 0
    assert desktop.start(prompt="login")["number"] is None
    assert runner.invoke(cli, ["qr", "number-matching", "no-such-app", "--on"]).exit_code != 0


def test_the_phone_steps_up_when_the_app_needs_mfa(desktop: Desktop, phone: Phone, app: Any,
                                                   erp: Any) -> None:
    """A stand-in "mfa" step (the step table has the real one): the app's policy wants a
    second factor that the phone's session lacks, so the phone is sent to that step's page
    with ``next`` and can approve once its session has one."""
    from sso import flow as sso_flow
    from sso.dbtypes import utcnow
    from sso.extensions import db
    from sso.oidc.models import Client
    from sso.sessions.models import Proof, SSOSession

    def mfa_step(request: Any, session: Any, now: Any) -> Any:
        if request.policy.mfa_required and "otp" not in session.amr:
            return sso_flow.Interaction("auth.account", "interaction_required")
        return None

    with app.app_context():
        db.session.get(Client, erp.client_id).mfa_required = True
        db.session.commit()
    passage = app.extensions["sso_passage"]
    previous = passage.steps
    passage.steps = tuple(sso_flow.Step("mfa", mfa_step) if s.name == "mfa" else s
                          for s in previous)
    try:
        code = desktop.start()
        response = phone.open(code["id"])
        assert response.status_code == 302
        assert response.headers["Location"] == f"/?next=/qr/s/{code['id']}"
        with app.app_context():
            for row in db.session.scalars(db.select(SSOSession)).all():
                row.add_proofs([Proof("otp", utcnow())])
            db.session.commit()
        assert phone.approve(code["id"]).status_code == 200
        back = desktop.complete()
        with app.app_context():
            from sso.audit import AuditEvent

            signin = db.session.scalars(db.select(AuditEvent).where(
                AuditEvent.event == "signin")).all()[-1]
            assert signin.details["amr"] == ["qr", "otp", "mfa"]
        assert back.status_code == 302
    finally:
        passage.steps = previous
