"""Each security-relevant event writes an audit row, driven through the real entry points
(pages, protocol endpoints, CLI). The table is the list of events the audit log promises."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from sso.cli import cli
from tests.conftest import PASSWORD, Flow, basic, csrf_of
from tests.harden.test_forms_and_headers import _reset_link
from tests.qrlogin.conftest import DESKTOP_UA, PHONE_UA, Desktop, Phone

NEW_PASSWORD = "Another-horse-7-staple!"


class World:
    """The app, alice, the ERP client and a browser (``flow``) to act with."""

    def __init__(self, app: Flask, flow: Flow, make_client: Any, tmp_path: Path) -> None:
        self.app, self.flow, self.make_client, self.tmp_path = app, flow, make_client, tmp_path

    def cli(self, *args: str) -> None:
        result = self.app.test_cli_runner().invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output

    def tokens(self) -> dict[str, Any]:
        return self.flow.token(self.flow.authorize()["code"]).get_json()  # type: ignore[no-any-return]


def _sign_in_fail(w: World) -> None:
    w.flow.login("alice", "wrong")


def _lockout(w: World) -> None:
    w.app.config["CAPTCHA_AFTER"] = 1000
    try:
        for _ in range(w.app.config["LOCKOUT_THRESHOLD"]):
            w.flow.login("alice", "wrong")
    finally:
        w.app.config["CAPTCHA_AFTER"] = 3


def _unlock(w: World) -> None:
    _lockout(w)
    w.cli("users", "unlock", "alice")


def _password_change(w: World) -> None:
    w.flow.authorize()
    page = w.flow.http.get("/password/change").get_data(as_text=True)
    response = w.flow.http.post("/password/change", data={
        "csrf_token": csrf_of(page), "current": PASSWORD, "password": NEW_PASSWORD,
        "confirm": NEW_PASSWORD})
    assert response.status_code in (200, 302), response.get_data(as_text=True)[:300]


def _password_reset(w: World) -> None:
    link = _reset_link(w.app, "alice")
    page = w.flow.http.get(link).get_data(as_text=True)
    response = w.flow.http.post(link, data={"csrf_token": csrf_of(page),
                                            "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]


def _enrol(w: World) -> Any:
    import pyotp

    from sso.dbtypes import utcnow
    from sso.mfa import service

    w.flow.authorize()
    page = w.flow.http.get("/mfa/enrol", query_string={"next": "/"})
    html = page.get_data(as_text=True)
    seed = re.search(r'id="mfa-manual-key">([^<]+)<', html)
    enrolment = re.search(r'name="enrolment" value="([^"]+)"', html)
    assert seed and enrolment, html[:500]
    response = w.flow.http.post("/mfa/enrol", data={
        "csrf_token": csrf_of(html), "enrolment": enrolment.group(1), "next": "/",
        "code": pyotp.TOTP(seed.group(1).replace(" ", "")).at(utcnow())})
    assert response.status_code in (200, 302), response.get_data(as_text=True)[:300]
    assert service  # the events come from the service the page calls
    return seed.group(1).replace(" ", "")


def _mfa_verify_fail(w: World) -> None:
    from sso.dbtypes import utcnow
    from sso.extensions import db
    from sso.mfa import service
    from sso.users.service import find_by_login

    _enrol(w)
    with w.app.app_context():
        with pytest.raises(service.CodeError):
            service.verify(find_by_login("alice"), "000000", origin=None, now=utcnow())
        db.session.commit()


def _mfa_verify(w: World) -> None:
    import pyotp

    from sso.dbtypes import utcnow
    from sso.extensions import db
    from sso.mfa import service
    from sso.users.service import find_by_login

    seed = _enrol(w)
    later = utcnow()
    with w.app.app_context():
        from datetime import timedelta

        later = later + timedelta(seconds=60)
        service.verify(find_by_login("alice"), pyotp.TOTP(seed).at(later), origin=None,
                       now=later)
        db.session.commit()


def _mfa_reset(w: World) -> None:
    _enrol(w)
    w.cli("users", "reset-mfa", "alice")


def _qr(w: World, deny: bool = False) -> None:
    desktop_http = w.app.test_client()
    desktop_http.environ_base["HTTP_USER_AGENT"] = DESKTOP_UA
    desktop = Desktop(desktop_http, Flow(desktop_http, w.flow.app_client))
    phone_http = w.app.test_client()
    phone_http.environ_base["HTTP_USER_AGENT"] = PHONE_UA
    phone = Phone(phone_http)
    phone.sign_in()
    code = desktop.start()
    if deny:
        phone.deny(code["id"])
        return
    phone.approve(code["id"])
    desktop.complete()


def _app_approval(w: World) -> None:
    from tests.apps.conftest import run_flow

    crm = w.make_client("CRM", ["https://crm.example.com/cb"], policy={"activation": "approval"})
    run_flow(Flow(w.app.test_client(), crm))
    w.cli("apps", "approve", crm.client_id, "alice")


def _consent(w: World) -> None:
    third = w.make_client("Partner", ["https://partner.example.com/cb"], first_party=False)
    flow = Flow(w.app.test_client(), third)
    flow.params = flow.authorize_params()
    response = flow.http.get("/authorize", query_string=flow.params)
    flow.login(flow_id=response.headers["Location"].split("flow=")[1])
    response = flow.http.get("/authorize", query_string=flow.params)
    while response.status_code == 302 and "/consent" not in response.headers["Location"]:
        response = flow.http.get(response.headers["Location"])
    page = flow.http.get(response.headers["Location"]).get_data(as_text=True)
    form = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page))
    form.update(decision="allow", csrf_token=csrf_of(page))
    flow.http.post("/consent", data=form)


def _revoke(w: World, kind: str = "access_token") -> None:
    tokens = w.tokens()
    w.flow.http.post("/revoke", data={"token": tokens[kind]}, headers=basic(w.flow.app_client))


def _refresh_reuse(w: World, grace: int = 0) -> None:
    """The same refresh token twice: outside the grace (0 s) a reuse, within it a replay."""
    refresh = w.tokens()["refresh_token"]
    before = w.app.config["REFRESH_REUSE_GRACE"]
    w.app.config["REFRESH_REUSE_GRACE"] = grace
    try:
        for _ in range(2):
            w.flow.http.post("/token", headers=basic(w.flow.app_client),
                             data={"grant_type": "refresh_token", "refresh_token": refresh})
    finally:
        w.app.config["REFRESH_REUSE_GRACE"] = before


def _code_replay(w: World) -> None:
    code = w.flow.authorize()["code"]
    w.flow.token(code)
    w.flow.token(code)


def _client_update(w: World) -> None:
    w.cli("clients", "update", w.flow.app_client.client_id, "--activation", "approval")


def _client_branding(w: World) -> None:
    w.cli("clients", "update", w.flow.app_client.client_id, "--name-zh", "企业资源计划",
          "--logo-uri", "https://erp.example.com/logo.png")


def _captcha_code(w: World) -> None:
    page = w.flow.http.get("/captcha/code").get_data(as_text=True)
    response = w.flow.http.post("/captcha/code", data={"csrf_token": csrf_of(page),
                                                       "login": "alice"})
    assert response.status_code == 200


def _client_lifecycle(w: World) -> None:
    w.cli("clients", "create", "--name", "Temp", "--redirect-uri", "https://t.example.com/cb",
          "--client-id", "temp-app")
    w.cli("clients", "delete", "temp-app")


def _keys_rotate(w: World) -> None:
    """The session's keys (in its database): the retired key stays published, so tokens
    signed before still verify."""
    w.cli("keys", "rotate")


def _logout(w: World) -> None:
    w.flow.authorize()
    page = w.flow.http.get("/logout")
    html = page.get_data(as_text=True)
    if page.status_code == 200 and "csrf_token" in html:
        form = dict(re.findall(r'name="(\w+)" value="([^"]*)"', html))
        w.flow.http.post("/logout/confirm", data=form)


#: (event, outcome, how to cause it).
EVENTS: list[tuple[str, str, Callable[[World], Any]]] = [
    ("signin.password", "success", lambda w: w.flow.authorize()),
    ("signin.password", "failure", _sign_in_fail),
    ("session.open", "success", lambda w: w.flow.authorize()),
    ("account.locked", "failure", _lockout),
    ("account.unlock", "success", _unlock),
    ("password.change", "success", _password_change),
    ("password.reset_request", "success", _password_reset),
    ("password.reset", "success", _password_reset),
    ("mfa.enrol", "success", _enrol),
    ("mfa.verify", "success", _mfa_verify),
    ("mfa.verify", "failure", _mfa_verify_fail),
    ("mfa.reset", "success", _mfa_reset),
    ("qr.create", "success", _qr),
    ("qr.scan", "success", _qr),
    ("qr.approve", "success", _qr),
    ("qr.consume", "success", _qr),
    ("qr.deny", "success", lambda w: _qr(w, deny=True)),
    ("app.activate", "success", lambda w: w.flow.authorize()),
    ("app.request", "success", _app_approval),
    ("app.activate", "success", _app_approval),  # `sso apps approve` activates
    ("consent.grant", "success", _consent),
    ("token.issue", "success", lambda w: w.tokens()),
    ("token.revoke", "success", _revoke),
    ("grant.revoke", "success", lambda w: _revoke(w, "refresh_token")),
    ("refresh.reuse", "failure", _refresh_reuse),
    ("refresh.replay", "success", lambda w: _refresh_reuse(w, grace=10)),
    ("code.replay", "failure", _code_replay),
    ("client.create", "success", _client_lifecycle),
    ("client.update", "success", _client_update),
    ("client.delete", "success", _client_lifecycle),
    ("client.branding", "success", _client_branding),
    ("signin.captcha_code", "success", _captcha_code),
    ("keys.rotate", "success", _keys_rotate),
    ("signout", "success", _logout),
]


@pytest.mark.parametrize("event, outcome, cause", EVENTS,
                         ids=[f"{e}-{o}" for e, o, _ in EVENTS])
def test_each_security_event_writes_an_audit_row(
    app: Flask, flow: Flow, make_client: Any, tmp_path: Path, event: str, outcome: str,
    cause: Callable[[World], Any]
) -> None:
    from sso.audit import AuditEvent
    from sso.extensions import db

    cause(World(app, flow, make_client, tmp_path))
    with app.app_context():
        rows = db.session.scalars(db.select(AuditEvent).where(AuditEvent.event == event)).all()
        seen = sorted({(r.event, r.outcome) for r in db.session.scalars(db.select(AuditEvent))})
        db.session.remove()
    assert any(r.outcome == outcome for r in rows), f"no {event}/{outcome}; saw {seen}"
