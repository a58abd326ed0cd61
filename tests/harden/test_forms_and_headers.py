"""Cross-cutting guarantees of the pages: CSRF on every POST form, rate limits on every form
that checks a secret or sends a message, error pages in the user's language, and no-store on
every response that carries a token or shows a secret."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import PASSWORD, Flow, csrf_of

_addresses = itertools.count(1)

CJK = re.compile(r"[\u4e00-\u9fff]")


def _fresh_ip() -> dict[str, str]:
    """A REMOTE_ADDR of its own, so one test's rate-limit budget does not meet another's."""
    n = next(_addresses)
    return {"REMOTE_ADDR": f"10.77.{n // 250}.{n % 250 + 1}"}


def _sign_in(app: Flask, erp: Any, environ: dict[str, str] | None = None) -> FlaskClient:
    http = app.test_client()
    if environ:
        http.environ_base.update(environ)
    flow = Flow(http, erp)
    flow.authorize()
    return http


def _post_forms(app: Flask) -> list[str]:
    """Every POST route whose view is not exempt from CSRF (found in the URL map)."""
    found = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if "POST" in (rule.methods or ()) and not getattr(view, "csrf_exempt", False):
            path = re.sub(r"<int:\w+>", "1", rule.rule)  # a number routes to the view
            found.append(re.sub(r"<(?:\w+:)?\w+>", "x" * 22, path))
    return sorted(set(found))


def test_the_post_forms_are_the_known_ones(app: Flask) -> None:
    """The list the CSRF test walks; a new form shows up here and is then covered."""
    assert len(_post_forms(app)) >= 20
    assert {"/login", "/consent", "/mfa/verify", "/password/change", "/qr/sessions",
            "/logout/confirm"} <= set(_post_forms(app))


@pytest.mark.parametrize("language, expected", [("en", "The form expired"), ("zh-CN", "表单")])
def test_every_post_form_refuses_a_missing_or_wrong_csrf_token(
    app: Flask, erp: Any, alice: Any, language: str, expected: str
) -> None:
    http = _sign_in(app, erp)
    problems = []
    for path in _post_forms(app):
        for sent in ({}, {"csrf_token": "forged"}):
            response = http.post(path, data={"flow": "x", **sent},
                                 headers={"Accept-Language": language})
            body = response.get_data(as_text=True)
            if response.status_code != 400 or response.mimetype != "text/html" or (
                    expected not in body):
                problems.append(f"{path} {sent}: {response.status_code} {body[:100]!r}")
    assert not problems, "\n".join(problems)


def _reset_link(app: Flask, username: str) -> str:
    """A real reset link for ``username``, read from the outbox like a user's mailbox."""
    from sso.outbox import OutboxMessage

    http = app.test_client()
    http.environ_base.update(_fresh_ip())
    token = csrf_of(http.get("/password/reset").get_data(as_text=True))
    http.post("/password/reset", data={"csrf_token": token, "login": username})
    with app.app_context():
        from sso.extensions import db

        message = db.session.scalars(db.select(OutboxMessage).order_by(
            OutboxMessage.id.desc())).first()
        assert message is not None
        found = re.search(r"/password/reset/[A-Za-z0-9_-]{20,}", str(message.body_text))
        assert found, message.body_text
        return found.group(0)


#: Forms that send mail or SMS or check a secret: (path, form, config key that limits them).
LIMITED_FORMS = [
    ("/login", {"username": "alice", "password": "wrong"}, "RATE_LIMIT_LOGIN_IP"),
    ("/password/reset", {"login": "nobody@example.com"}, "RATE_LIMIT_ACCOUNT_IP"),
    ("/password/reset/code", {"login": "alice", "code": "000000"}, "RATE_LIMIT_ACCOUNT_IP"),
    ("/activate/again", {"login": "nobody@example.com"}, "RATE_LIMIT_ACCOUNT_IP"),
    ("/activate/code", {"login": "alice", "code": "000000"}, "RATE_LIMIT_ACCOUNT_IP"),
    ("/activate/" + "x" * 43, {"password": "x"}, "RATE_LIMIT_ACCOUNT_IP"),
    ("/register/verify/" + "x" * 43, {}, "RATE_LIMIT_ACCOUNT_IP"),
    ("reset-link", {"password": "short", "confirm": "short"}, "RATE_LIMIT_ACCOUNT_IP"),
    ("/password/change", {"current": "wrong", "password": "x", "confirm": "x"},
     "RATE_LIMIT_ACCOUNT_IP"),
    ("/qr/sessions", {}, "RATE_LIMIT_QR_CREATE_IP"),
    ("/qr/sessions/" + "x" * 22 + "/complete", {}, "RATE_LIMIT_QR_CREATE_IP"),
    ("/mfa/verify", {"code": "000000"}, "RATE_LIMIT_MFA_IP"),
    ("/mfa/remove", {"password": "wrong", "code": "000000"}, "RATE_LIMIT_MFA_IP"),
    ("/mfa/recovery-codes", {"code": "000000"}, "RATE_LIMIT_MFA_IP"),
]


@pytest.mark.parametrize("path, form, limit", LIMITED_FORMS, ids=[f[0][:30] for f in LIMITED_FORMS])
def test_forms_that_check_secrets_or_send_messages_are_rate_limited(
    app: Flask, erp: Any, alice: Any, monkeypatch: pytest.MonkeyPatch, path: str,
    form: dict[str, str], limit: str
) -> None:
    if path == "reset-link":
        path = _reset_link(app, "alice")
    monkeypatch.setitem(app.config, "LOCKOUT_THRESHOLD", 1000)
    monkeypatch.setitem(app.config, "CAPTCHA_AFTER", 1000)
    http = _sign_in(app, erp, _fresh_ip())
    page = http.get("/login").get_data(as_text=True)
    monkeypatch.setitem(app.config, limit, "2/600")
    responses = [
        http.post(path, data={"csrf_token": csrf_of(page), **form},
                  headers={"Accept-Language": "zh-CN", "X-CSRF-Token": csrf_of(page)})
        for _ in range(3)
    ]
    last = responses[-1]
    if path.startswith("/mfa/") and path != "/mfa/verify":
        assert last.status_code == 302 and "mfa=limited" in last.headers["Location"]
        return
    assert [r.status_code for r in responses[:2]] != [429, 429]
    assert last.status_code == 429, last.get_data(as_text=True)[:300]
    if last.mimetype == "text/html":
        assert CJK.search(last.get_data(as_text=True))


#: One bad request per area, asked in Chinese: the page must answer in Chinese.
ZH_PAGES = [
    ("GET", "/no/such/page", {}),
    ("DELETE", "/login", {}),
    ("GET", "/authorize", {"client_id": "unknown", "response_type": "code"}),
    ("GET", "/consent", {"flow": "junk"}),
    ("GET", "/activate/" + "x" * 43, {}),
    ("GET", "/password/reset/" + "x" * 43, {}),
    ("GET", "/register/verify/" + "x" * 43, {}),
    ("GET", "/apps/waiting", {"flow": "junk"}),
    ("GET", "/mfa/verify", {"flow": "junk"}),
    ("GET", "/mfa/enrol", {"next": "//evil.example"}),
    ("GET", "/qr/s/" + "x" * 22, {}),
    ("GET", "/qr/login", {"flow": "junk"}),
    ("GET", "/logout", {"id_token_hint": "junk", "post_logout_redirect_uri": "https://x"}),
]


@pytest.mark.parametrize("method, path, query", ZH_PAGES, ids=[p[1][:30] for p in ZH_PAGES])
def test_each_area_answers_bad_input_in_the_users_language(
    client: FlaskClient, method: str, path: str, query: dict[str, str]
) -> None:
    response = client.open(path, method=method, query_string=query,
                           headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert response.status_code < 500
    if response.status_code in (301, 302, 303):
        response = client.get(response.headers["Location"],
                              headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert response.mimetype == "text/html"
    assert CJK.search(response.get_data(as_text=True)), response.get_data(as_text=True)[:300]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_token_userinfo_introspection_and_revocation_are_not_cached(flow: Flow, erp: Any
                                                                     ) -> None:
    from tests.conftest import basic

    token = flow.token(flow.authorize()["code"])
    assert token.headers["Cache-Control"] == "no-store"
    body = token.get_json()
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    responses = {
        "userinfo GET": flow.http.get("/userinfo", headers=bearer),
        "userinfo POST": flow.http.post("/userinfo", headers=bearer),
        "userinfo error": flow.http.get("/userinfo", headers={"Authorization": "Bearer x"}),
        "token error": flow.http.post("/token", data={"grant_type": "nope"}, headers=basic(erp)),
        "introspect": flow.http.post("/introspect", data={"token": body["access_token"]},
                                     headers=basic(erp)),
        "refresh": flow.http.post("/token", headers=basic(erp), data={
            "grant_type": "refresh_token", "refresh_token": body.get("refresh_token", "x")}),
    }
    for name, response in responses.items():
        assert "no-store" in response.headers.get("Cache-Control", ""), name


def test_pages_showing_secrets_are_not_cached(app: Flask, erp: Any, alice: Any) -> None:
    """TOTP enrolment (the seed) and recovery codes."""
    http = _sign_in(app, erp)
    enrol = http.get("/mfa/enrol", query_string={"next": "/"})
    assert enrol.status_code == 200, enrol.get_data(as_text=True)[:300]
    assert "otpauth://" in enrol.get_data(as_text=True) or "svg" in enrol.get_data(as_text=True)
    assert enrol.headers["Cache-Control"] == "no-store"
    assert PASSWORD  # the signed-in user's password is the fixture's


def test_every_answer_carries_the_security_defaults_once_and_its_own_values_win(
        app_config: dict[str, Any]) -> None:
    """A page gets no framing, no sniffing, no Referer, its CSP, no-store and (over https)
    HSTS, each once; a header the answer set itself is kept, not doubled or replaced."""
    from sso import create_app

    served = create_app({**app_config, "ISSUER": "https://sso.test"})

    @served.get("/test-own-headers")
    def own_headers() -> Any:
        return ("<p>ok</p>", 200, {"Cache-Control": "private, max-age=5",
                                   "x-frame-options": "SAMEORIGIN"})

    @served.get("/test-plain-page")
    def plain_page() -> Any:
        return "<p>ok</p>"

    http = served.test_client()
    plain = http.get("/test-plain-page", base_url="https://sso.test")
    for name, value in (("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
                        ("Referrer-Policy", "no-referrer"), ("Cache-Control", "no-store"),
                        ("Strict-Transport-Security", "max-age=31536000")):
        assert plain.headers.getlist(name) == [value], name
    assert len(plain.headers.getlist("Content-Security-Policy")) == 1
    assert "frame-ancestors 'none'" in plain.headers["Content-Security-Policy"]
    own = http.get("/test-own-headers", base_url="https://sso.test")
    assert own.headers.getlist("Cache-Control") == ["private, max-age=5"]
    assert own.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert own.headers.getlist("X-Content-Type-Options") == ["nosniff"]
