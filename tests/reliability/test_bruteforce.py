"""The holes a brute-forcer uses, closed: the second factor's own counter with a lock and a
daily cap, every password check counted, one answer whether an account exists or not, the
picture challenge per account (not per office), ID tokens only as ``id_token_hint``, and the
counters kept in the process when Redis is down."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest
from flask import Flask

from sso import ratelimit
from sso.accounts import lockout
from sso.accounts.service import authenticate
from sso.audit import Origin
from sso.dbtypes import utcnow
from sso.extensions import RedisStore, db
from sso.mfa import service as mfa
from tests.accounts.test_pages import login, post_form
from tests.conftest import PASSWORD, Flow, csrf_of
from tests.mfa.conftest import Enrolled
from tests.mfa.test_flow import Driver

OFFICE = "203.0.113.10"


def _origin(ip: str = OFFICE) -> Origin:
    return Origin(ip=ip, user_agent="test")


def _wrong(enrolled: Enrolled) -> str:
    now = pyotp.TOTP(enrolled.seed)
    return next(c for c in ("000000", "111111", "222222") if c not in
                {now.now(), now.at(utcnow().timestamp() - 30), now.at(utcnow().timestamp() + 30)})


def test_a_right_password_between_guesses_does_not_reset_the_second_factor(
        app: Flask, alice: Any, enrol: Any) -> None:
    """password, two guesses, password, two guesses... used to run for ever."""
    enrolled = enrol("alice")
    with app.app_context():
        user = authenticate("alice", PASSWORD).user
        refusals = []
        for _ in range(3):
            assert authenticate("alice", PASSWORD, _origin()).ok
            for _ in range(2):
                with pytest.raises(mfa.CodeError) as refused:
                    mfa.verify(user, _wrong(enrolled), origin=_origin(), now=utcnow())
                refusals.append(refused.value.reason)
        db.session.commit()
        assert "locked" in refusals  # the fifth wrong code locked the second factor
        assert lockout.locked_for(alice.id, lockout.SECOND) > 0
        with pytest.raises(mfa.CodeError) as refused:
            mfa.verify(user, enrolled.code(), origin=_origin(), now=utcnow())
        assert refused.value.reason == "locked"  # even the right code, during the lock
        assert authenticate("alice", PASSWORD, _origin()).ok  # the password is not locked
        db.session.rollback()


def test_the_second_factor_has_a_daily_cap(app: Flask, alice: Any, enrol: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "MFA_DAILY_FAILURES", 6)
    enrolled = enrol("alice")
    with app.app_context():
        user = authenticate("alice", PASSWORD).user
        for _ in range(4):
            with pytest.raises(mfa.CodeError):
                mfa.verify(user, _wrong(enrolled), origin=None, now=utcnow())
        assert mfa.verify(user, enrolled.code(1), origin=None, now=utcnow()) == "otp"
        for _ in range(2):
            with pytest.raises(mfa.CodeError):
                mfa.verify(user, _wrong(enrolled), origin=None, now=utcnow())
        assert lockout.failures(alice.id, lockout.SECOND) == 2  # not locked by the counter
        with pytest.raises(mfa.CodeError) as refused:
            mfa.verify(user, enrolled.code(2), origin=None, now=utcnow())
        assert refused.value.reason == "locked"  # but by the day's cap
        db.session.rollback()


def test_wrong_passwords_on_mfa_remove_count(app: Flask, client: Any, flow: Flow,
                                             enrol: Any) -> None:
    enrolled = enrol("alice")
    Driver(flow, lambda: enrolled.code()).run()
    csrf = csrf_of(client.get("/").get_data(as_text=True))
    for _ in range(app.config["LOCKOUT_THRESHOLD"]):
        answer = client.post("/mfa/remove", data={"csrf_token": csrf, "password": "Guess-1-x",
                                                  "code": enrolled.code(1)})
        assert answer.status_code == 302
    with app.app_context():
        assert lockout.locked_for(flow_user_id(app)) > 0
    locked = client.post("/mfa/remove", data={"csrf_token": csrf, "password": PASSWORD,
                                              "code": enrolled.code(1)})
    assert locked.headers["Location"].endswith("mfa=code-locked")
    assert 'id="mfa-setup"' not in client.get("/").get_data(as_text=True)  # still enrolled


def flow_user_id(app: Flask) -> int:
    from sso.users.service import find_by_login

    return find_by_login("alice").id  # type: ignore[union-attr]


def test_wrong_current_passwords_on_password_change_count(app: Flask, client: Any,
                                                         flow: Flow) -> None:
    flow.authorize()
    for _ in range(app.config["LOCKOUT_THRESHOLD"]):
        answer = post_form(client, "/password/change", current="Guess-1-x",
                           password="New-password-42!", confirm="New-password-42!")
        assert answer.status_code == 400
    answer = post_form(client, "/password/change", current=PASSWORD,
                       password="New-password-42!", confirm="New-password-42!")
    assert answer.status_code == 400  # locked: even the right current password is refused
    with app.app_context():
        assert authenticate("alice", PASSWORD).reason == "locked"


def _visible(page: str) -> str:
    """The page without what differs on every answer (CSRF token, nonces)."""
    page = re.sub(r'name="csrf_token" value="[^"]*"', "", page)
    return re.sub(r'nonce="[^"]*"|nonce-[A-Za-z0-9+/=_-]+', "", page)


def test_password_reset_answers_the_same_for_a_known_and_an_unknown_name(
        app: Flask, alice: Any) -> None:
    answers = []
    for name in ("alice", "nobody-here", "alice@example.com", "nobody@example.com"):
        answer = post_form(app.test_client(), "/password/reset", login=name)
        answers.append((answer.status_code, _visible(answer.get_data(as_text=True))))
    assert len(set(answers)) == 1


def test_registration_answers_the_same_for_a_taken_and_a_free_address(
        app: Flask, alice: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "SELF_REGISTRATION", True)

    def register(email: str, password: str, username: str) -> tuple[int, str]:
        answer = post_form(app.test_client(), "/register", username=username, email=email,
                           password=password, confirm=password)
        page = _visible(answer.get_data(as_text=True)).replace(email, "EMAIL")
        return answer.status_code, page.replace(username, "USERNAME")

    # A one-character password: the policy speaks, taken address or not.
    assert register("alice@example.com", "x", "newcomer1") == \
        register("free@example.com", "x", "newcomer2")
    # A good one: "check your email" for both; only the free address gets a mail.
    assert register("alice@example.com", "Fresh-start-42!", "newcomer3") == \
        register("free2@example.com", "Fresh-start-42!", "newcomer4")


def test_activation_again_answers_the_same(app: Flask, alice: Any) -> None:
    answers = {_visible(post_form(app.test_client(), "/activate/again", login=name)
                        .get_data(as_text=True)) for name in ("alice", "nobody-here")}
    assert len(answers) == 1


def test_only_an_id_token_is_an_id_token_hint(app: Flask, flow: Flow) -> None:
    from sso.oidc.public import encode_set

    code = flow.authorize()["code"]
    tokens = flow.token(code).get_json()
    with app.app_context():
        event, _jti = encode_set(app.extensions["sso_keys"], issuer=app.config["ISSUER"],
                                 audience=flow.app_client.client_id, subject="x", events={},
                                 now=utcnow())
    for hint, accepted in ((tokens["id_token"], True), (tokens["access_token"], False),
                           (event, False)):
        params = flow.authorize_params(prompt="none", id_token_hint=hint)
        answer = flow.http.get("/authorize", query_string=params)
        location = answer.headers.get("Location", "")
        if accepted:
            assert "code=" in location, location
        else:
            assert "code=" not in location
            assert answer.status_code == 400 or "error=invalid_request" in location


def test_people_behind_one_address_do_not_bring_the_picture_up_for_each_other(
        app: Flask, make_user: Any) -> None:
    for name in ("bob", "carol", "dave", "erin"):
        make_user(name)
    office = {"REMOTE_ADDR": OFFICE}
    for name in ("bob", "carol", "dave", "erin"):
        http = app.test_client()
        http.environ_base.update(office)
        assert "captcha" not in login(http, name, "Wrong-guess-1").get_data(as_text=True)
    alice_browser = app.test_client()
    alice_browser.environ_base.update(office)
    make_user("alice")
    assert 'id="captcha-image"' not in alice_browser.get("/login").get_data(as_text=True)
    assert login(alice_browser, "alice", PASSWORD).status_code == 302
    # One account's own failures do bring it up, for that account.
    for _ in range(app.config["CAPTCHA_AFTER"]):
        page = login(app.test_client(), "bob", "Wrong-guess-1").get_data(as_text=True)
    assert 'id="captcha-image"' in page


def test_many_failures_from_one_address_bring_the_picture_up_for_it(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "CAPTCHA_AFTER_IP", 5)
    http = app.test_client()
    for n in range(5):
        login(http, f"stranger{n}", "Wrong-guess-1")
    assert 'id="captcha-image"' in http.get("/login").get_data(as_text=True)
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.99"
    assert 'id="captcha-image"' not in other.get("/login").get_data(as_text=True)


@pytest.fixture
def redis_down(app: Flask) -> Iterator[None]:
    store = app.extensions["sso_redis"]
    app.extensions["sso_redis"] = RedisStore("redis://127.0.0.1:1/0", store.prefix)
    ratelimit.local.clear()
    try:
        yield
    finally:
        app.extensions["sso_redis"] = store
        ratelimit.local.clear()


def test_without_redis_the_lockout_still_locks(app: Flask, alice: Any, redis_down: None
                                               ) -> None:
    with app.app_context():
        for _ in range(app.config["LOCKOUT_THRESHOLD"]):
            assert authenticate("alice", "Wrong-guess-1", _origin()).reason in (
                "invalid", "locked")
        assert authenticate("alice", PASSWORD, _origin()).reason == "locked"
        db.session.rollback()


def test_without_redis_rate_limits_are_stricter_not_gone(app: Flask, redis_down: None
                                                        ) -> None:
    with app.app_context():
        allowed = sum(ratelimit.allow("probe", "ip", "10/60") for _ in range(20))
    assert allowed == 5
