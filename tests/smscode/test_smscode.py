"""Sign-in with a one-time code by SMS (``sso/smscode``): off by default; codes sent through
the outbox, stored only as a MAC, used once, five tries, ten minutes, rate-limited, the same
answer for names that match no one, audited, in both languages, ending in the passage."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from sso.audit import AuditEvent
from sso.extensions import db
from sso.smscode import enabled
from tests.accounts.helpers import messages
from tests.conftest import Flow, csrf_of, query_of, resumed

PHONE = "+8613800000001"


@pytest.fixture
def http(sms_app: Flask) -> Any:
    return sms_app.test_client()


@pytest.fixture
def pending(http: Any, erp: Any) -> Flow:
    """A browser with an app's authorization request waiting on the sign-in page."""
    return new_pending(http, erp)


def new_pending(http: Any, erp: Any) -> Flow:
    flow = Flow(http, erp)
    flow.params = flow.authorize_params()
    response = http.get("/authorize", query_string=flow.params)
    assert response.headers["Location"].startswith("/login")
    flow.flow_id = query_of(response.headers["Location"])["flow"]  # type: ignore[attr-defined]
    return flow


def ask(flow: Flow, login: str, **headers: str) -> Any:
    page = flow.http.get("/login/sms", query_string={"flow": flow.flow_id}, headers=headers)
    assert page.status_code == 200
    return flow.http.post("/login/sms", headers=headers, data={
        "csrf_token": csrf_of(page.get_data(as_text=True)), "flow": flow.flow_id,
        "login": login})


def attempt_of(response: Any) -> str:
    found = re.search(r'name="attempt" value="([^"]+)"', response.get_data(as_text=True))
    assert found, response.get_data(as_text=True)[:800]
    return found.group(1)


def type_code(flow: Flow, attempt: str, code: str, csrf_from: Any) -> Any:
    return flow.http.post("/login/sms/verify", data={
        "csrf_token": csrf_of(csrf_from.get_data(as_text=True)), "flow": flow.flow_id,
        "attempt": attempt, "code": code})


def sent_codes(app: Flask, phone: str = PHONE) -> list[str]:
    with app.app_context():
        return [m.payload["params"]["code"] for m in messages(phone, "sign_in_code")]


def audit_events(app: Flask, event: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.event == event)
                                       .order_by(AuditEvent.id)))


def test_off_by_default(app: Flask, client: Any) -> None:
    assert not app.config["SMS_SIGN_IN"]
    assert client.get("/login/sms").status_code == 404
    assert "Code by SMS" not in client.get("/login").get_data(as_text=True)


@pytest.mark.parametrize(("typed", "on"), [("true", True), ("TRUE", True), ("1", True),
                                           (True, True), ("false", False), ("", False),
                                           (False, False), ("no", False)])
def test_the_setting_as_typed(typed: Any, on: bool) -> None:
    assert enabled(typed) is on


def test_a_code_by_sms_signs_in_and_the_app_gets_its_code(
        app: Flask, pending: Flow, make_phone_user: Any) -> None:
    user_id = make_phone_user()
    login_page = pending.http.get("/login", query_string={"flow": pending.flow_id})
    assert "Code by SMS" in login_page.get_data(as_text=True)
    sent = ask(pending, "alice")
    assert sent.status_code == 200
    [code] = sent_codes(app)
    response = resumed(pending.http, type_code(pending, attempt_of(sent), code, sent))
    answer = query_of(response.headers["Location"])
    assert response.headers["Location"].startswith(pending.params["redirect_uri"])
    tokens = pending.token(answer["code"]).get_json()
    assert tokens["access_token"]
    [signin] = audit_events(app, "signin")
    assert signin.user_id == user_id and signin.details["door"] == "sms-code"
    assert signin.details["amr"] == ["sms"]
    [asked] = audit_events(app, "signin.sms_code.sent")
    assert asked.outcome == "success" and asked.user_id == user_id


def test_the_mobile_number_names_the_account_too(app: Flask, pending: Flow,
                                                 make_phone_user: Any) -> None:
    make_phone_user()
    sent = ask(pending, "+86 138 0000 0001")
    [code] = sent_codes(app)
    response = type_code(pending, attempt_of(sent), code, sent)
    assert response.status_code == 302


def test_the_code_is_stored_only_as_a_mac(sms_app: Flask, pending: Flow,
                                          make_phone_user: Any) -> None:
    from sso.extensions import get_redis

    make_phone_user()
    sent = ask(pending, "alice")
    [code] = sent_codes(sms_app)
    with sms_app.app_context():
        store = get_redis()
        key = store.key("smscode", "attempt", attempt_of(sent))
        stored = store.client.hgetall(key)
        ttl = store.client.ttl(key)
    assert stored and all(code.encode() not in value for value in stored.values())
    assert 0 < ttl <= 600


def test_a_code_is_used_once(app: Flask, sms_app: Flask, pending: Flow, erp: Any,
                             make_phone_user: Any) -> None:
    make_phone_user()
    sent = ask(pending, "alice")
    [code] = sent_codes(app)
    assert type_code(pending, attempt_of(sent), code, sent).status_code == 302
    # Whoever saw the code and the page's attempt id, in another browser.
    other = new_pending(sms_app.test_client(), erp)
    page = other.http.get("/login/sms", query_string={"flow": other.flow_id})
    again = type_code(other, attempt_of(sent), code, page)
    assert again.status_code == 400
    assert "expired or has been used up" in again.get_data(as_text=True)


def test_five_tries_then_even_the_right_code_is_refused(app: Flask, pending: Flow,
                                                        make_phone_user: Any) -> None:
    make_phone_user()
    sent = ask(pending, "alice")
    [code] = sent_codes(app)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1):
        response = type_code(pending, attempt_of(sent), wrong, sent)
        assert response.status_code == 400
        assert f"Tries left: {left}." in response.get_data(as_text=True)
    last = type_code(pending, attempt_of(sent), "12ab", sent)  # malformed: still a try
    assert "Tries left: 0." in last.get_data(as_text=True)
    refused = type_code(pending, attempt_of(sent), code, sent)
    assert refused.status_code == 400
    assert "expired or has been used up" in refused.get_data(as_text=True)
    failures = audit_events(app, "signin.sms_code")
    assert len(failures) == 6 and {f.outcome for f in failures} == {"failure"}


def test_the_fifth_try_may_be_the_right_one(app: Flask, pending: Flow,
                                            make_phone_user: Any) -> None:
    make_phone_user()
    sent = ask(pending, "alice")
    [code] = sent_codes(app)
    for _ in range(4):
        type_code(pending, attempt_of(sent), "000000" if code != "000000" else "111111", sent)
    assert type_code(pending, attempt_of(sent), code, sent).status_code == 302


def test_a_new_code_retires_the_previous_one(app: Flask, pending: Flow,
                                             make_phone_user: Any) -> None:
    make_phone_user()
    first = ask(pending, "alice")
    second = ask(pending, "alice")
    old_code, new_code = sent_codes(app)
    refused = type_code(pending, attempt_of(first), old_code, first)
    assert "expired or has been used up" in refused.get_data(as_text=True)
    assert type_code(pending, attempt_of(second), new_code, second).status_code == 302


def _shape(response: Any) -> str:
    """The page with its per-request secrets blanked out."""
    html = response.get_data(as_text=True)
    html = re.sub(r'name="attempt" value="[^"]+"', 'name="attempt" value=""', html)
    html = re.sub(r'name="csrf_token" value="[^"]+"', 'name="csrf_token" value=""', html)
    return re.sub(r"nonce-[\w+/=-]+|nonce=\"[^\"]+\"", "", html)


@pytest.mark.parametrize("who", ["nobody", "unverified", "disabled", "no-phone"])
def test_names_that_cannot_get_a_code_get_the_same_answer_and_no_sms(
        app: Flask, pending: Flow, make_phone_user: Any, make_user: Any, who: str) -> None:
    make_phone_user()
    if who == "unverified":
        make_phone_user("bob", "+8613800000002", verified=False)
    elif who == "disabled":
        make_phone_user("bob", "+8613800000002", status="disabled")
    elif who == "no-phone":
        make_user("bob")
    known = ask(pending, "alice")
    other = ask(pending, "bob")
    assert other.status_code == known.status_code == 200
    assert _shape(other) == _shape(known)
    assert sent_codes(app, "+8613800000002") == []
    tried = type_code(pending, attempt_of(other), "123456", other)
    assert "Tries left: 4." in tried.get_data(as_text=True)
    [_alice, refused] = audit_events(app, "signin.sms_code.sent")
    assert refused.outcome == "failure" and refused.details["reason"] == "no_match"


def test_asking_for_codes_is_rate_limited_per_name_known_or_not(
        app: Flask, pending: Flow, make_phone_user: Any) -> None:
    make_phone_user()
    for login in ("alice", "nobody"):
        answers = [ask(pending, login).status_code for _ in range(4)]
        assert answers == [200, 200, 200, 429]
    assert len(sent_codes(app)) == 3


def test_the_pages_and_the_sms_speak_chinese(app: Flask, pending: Flow,
                                             make_phone_user: Any) -> None:
    make_phone_user(locale="zh-CN")
    zh = {"Accept-Language": "zh-CN,zh;q=0.9"}
    page = pending.http.get("/login/sms", query_string={"flow": pending.flow_id}, headers=zh)
    assert "用短信验证码登录" in page.get_data(as_text=True)
    sent = ask(pending, "alice", **zh)
    assert "输入短信中的验证码" in sent.get_data(as_text=True)
    with app.app_context():
        [message] = messages(PHONE, "sign_in_code")
        assert "您的登录验证码为" in (message.body_text or "")


def test_an_sms_sign_in_then_an_authenticator_code_is_two_factors() -> None:
    """A first proof that is itself a code (SMS sign-in) is not a second factor alone, and
    the authenticator's code after it completes the pair (no loop on the code page)."""
    from datetime import UTC, datetime, timedelta

    from sso.sessions.models import SECOND_FACTOR_PROOFS, Proof, SSOSession

    at = datetime(2026, 1, 1, tzinfo=UTC)
    session = SSOSession(proof_log=[Proof("sms", at).to_json()])
    assert session.second_factor(SECOND_FACTOR_PROOFS) is None
    session.add_proofs([Proof("otp", at + timedelta(minutes=1))])
    found = session.second_factor(SECOND_FACTOR_PROOFS)
    assert found is not None and found.method == "otp"
    assert session.amr == ["sms", "otp", "mfa"]


def test_an_app_that_requires_two_factors_asks_for_the_authenticator_after_the_sms_code(
        app: Flask, http: Any, make_client: Any, make_phone_user: Any) -> None:
    from datetime import timedelta

    import pyotp

    from sso.dbtypes import utcnow
    from sso.mfa import service as mfa
    from sso.users.service import get

    user_id = make_phone_user()
    with app.app_context():
        past = utcnow() - timedelta(seconds=90)
        enrolment = mfa.begin_enrolment(get(user_id))
        mfa.confirm_enrolment(get(user_id), enrolment.id, pyotp.TOTP(enrolment.seed).at(past),
                              origin=None, now=past)
        db.session.commit()
    payroll = make_client("Payroll", redirect_uris=["https://payroll.example.com/cb"],
                          policy={"mfa_required": True})
    flow = new_pending(http, payroll)
    sent = ask(flow, "alice")
    [code] = sent_codes(app)
    response = resumed(http, type_code(flow, attempt_of(sent), code, sent))
    location = response.headers["Location"]
    assert location.startswith("/mfa/verify"), location
    page = http.get(location)
    done = resumed(http, http.post("/mfa/verify", data={
        "csrf_token": csrf_of(page.get_data(as_text=True)), "flow": flow.flow_id,
        "code": pyotp.TOTP(enrolment.seed).now()}))
    assert done.headers["Location"].startswith("https://payroll.example.com/cb"), \
        done.headers["Location"]
    claims = flow.token(query_of(done.headers["Location"])["code"]).get_json()
    assert claims["access_token"]
