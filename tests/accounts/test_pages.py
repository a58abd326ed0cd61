"""The account pages through the test client: activation, reset, captcha, forced change."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sso.accounts import lifecycle
from sso.accounts.service import create_user
from sso.extensions import db
from tests.accounts.helpers import in_app, last_link, messages
from tests.conftest import PASSWORD, Flow, csrf_of, query_of

NEW = "Fresh-Lantern-42"


def post_form(client: Any, url: str, **fields: str) -> Any:
    page = client.get(url)
    return client.post(url, data={"csrf_token": csrf_of(page.get_data(as_text=True)), **fields})


def login(client: Any, username: str, password: str, **extra: str) -> Any:
    return post_form(client, "/login", username=username, password=password, **extra)


def invite_bob(app: Any) -> str:
    in_app(app, lifecycle.invite, "bob", email="bob@example.com")
    with app.app_context():
        return last_link("bob@example.com", "activation").split("sso.test", 1)[1]


def test_activation_page_sets_the_password_and_signs_in(app: Any, client: Any) -> None:
    path = invite_bob(app)
    page = client.get(path)
    assert page.status_code == 200 and "Activate your account" in page.get_data(as_text=True)
    mismatch = post_form(client, path, password=NEW, confirm=NEW + "x")
    assert mismatch.status_code == 400 and "not the same" in mismatch.get_data(as_text=True)
    weak = post_form(client, path, password="password", confirm="password")
    text = weak.get_data(as_text=True)
    assert weak.status_code == 400 and "too common" in text and "at least 10" in text
    done = post_form(client, path, password=NEW, confirm=NEW)
    assert done.status_code == 302 and done.headers["Location"] == "/"
    assert "bob" in client.get("/").get_data(as_text=True)
    again = client.get(path)
    assert again.status_code == 400
    assert "already been used" in again.get_data(as_text=True)
    assert "/activate/again" in again.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/activate/forged-token", "/password/reset/forged",
                                  "/activate/" + "x" * 3000])
def test_forged_links_get_a_clear_page(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 400
    assert "not valid" in response.get_data(as_text=True)


def test_invited_user_is_told_only_after_the_right_password(app: Any, client: Any) -> None:
    with app.app_context():
        create_user("ivy", email="ivy@example.com", password=NEW, status="invited")
        db.session.commit()
    wrong = login(client, "ivy", "Wrong-Lantern-1").get_data(as_text=True)
    assert "Incorrect username or password." in wrong and "not activated" not in wrong
    right = login(client, "ivy", NEW).get_data(as_text=True)
    assert "not activated yet" in right


def test_reset_request_answers_the_same_for_unknown_users(app: Any, client: Any,
                                                          alice: Any) -> None:
    known = post_form(client, "/password/reset", login="alice").get_data(as_text=True)
    unknown = post_form(client, "/password/reset", login="nobody").get_data(as_text=True)
    assert known == unknown and "If an account matches" in known
    with app.app_context():
        assert len(messages("alice@example.com", "reset")) == 1
        path = last_link("alice@example.com", "reset").split("sso.test", 1)[1]
    done = post_form(client, path, password=NEW, confirm=NEW)
    assert done.status_code == 200 and "Password changed" in done.get_data(as_text=True)
    assert "Incorrect" in login(client, "alice", PASSWORD).get_data(as_text=True)
    assert login(client, "alice", NEW).status_code == 302


def test_reset_by_sms_goes_to_the_code_page(app: Any, client: Any, make_user: Any) -> None:
    make_user("alice", phone="13700137000")
    response = post_form(client, "/password/reset", login="alice", channel="sms")
    assert response.status_code == 302 and "/password/reset/code" in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "6-digit code" in page
    wrong = post_form(client, "/password/reset/code", login="alice", code="000000",
                      password=NEW, confirm=NEW)
    assert wrong.status_code == 400


def test_captcha_after_three_failures_for_an_account(app: Any, client: Any,
                                                    alice: Any) -> None:
    """Counted per account (and account and address), not per address alone: the page for
    alice asks for the picture, a fresh sign-in page (someone else in the office) does not
    (tests/reliability/test_bruteforce.py has the office)."""
    for _ in range(app.config["CAPTCHA_AFTER"]):
        page = login(client, "alice", "Wrong-guess-1").get_data(as_text=True)
    challenge = re.search(r'name="captcha_id" value="([^"]+)"', page)
    assert challenge and 'id="captcha-image"' in page
    image = client.get(f"/captcha/{challenge.group(1)}.png")
    assert image.status_code == 200 and image.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'id="captcha-image"' not in client.get("/login").get_data(as_text=True)
    refused = login(client, "alice", PASSWORD)
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert "characters shown in the picture" in page
    challenge_id = re.search(r'name="captcha_id" value="([^"]+)"', page).group(1)
    with app.app_context():
        from sso.accounts import captcha

        answer = captcha.answer_of(challenge_id)
    response = client.post("/login", data={
        "csrf_token": csrf_of(page), "username": "alice", "password": PASSWORD,
        "captcha_id": challenge_id, "captcha": answer.lower()})
    assert response.status_code == 302
    assert client.get(f"/captcha/{challenge_id}.png").status_code == 404  # used up


def test_must_change_password_comes_before_the_code(app: Any, client: Any, erp: Any) -> None:
    with app.app_context():
        create_user("alice", email="alice@example.com", password=PASSWORD, must_change=True)
        db.session.commit()
    flow = Flow(client, erp)
    flow.params = flow.authorize_params()
    response = client.get("/authorize", query_string=flow.params)
    flow_id = query_of(response.headers["Location"])["flow"]
    response = flow.login("alice", PASSWORD, flow_id)
    response = client.get(response.headers["Location"])
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/password/change")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "must be changed" in page
    same = client.post("/password/change", data={
        "csrf_token": csrf_of(page), "flow": flow_id, "current": PASSWORD,
        "password": PASSWORD, "confirm": PASSWORD})
    assert same.status_code == 400 and "not used recently" in same.get_data(as_text=True)
    changed = client.post("/password/change", data={
        "csrf_token": csrf_of(page), "flow": flow_id, "current": PASSWORD,
        "password": NEW, "confirm": NEW})
    resumed = client.get(changed.headers["Location"])
    assert resumed.headers["Location"].startswith(erp.redirect_uri)
    code = query_of(resumed.headers["Location"])["code"]
    assert flow.token(code).status_code == 200


def test_change_page_needs_a_session(client: Any) -> None:
    assert client.get("/password/change").headers["Location"].startswith("/login")


def test_registration_is_off_by_default_and_works_when_on(app: Any, client: Any) -> None:
    assert client.get("/register").status_code == 404
    app.config["SELF_REGISTRATION"] = True
    try:
        assert "Create an account" in client.get("/login").get_data(as_text=True)
        done = post_form(client, "/register", username="hana", email="hana@example.com",
                         name="Hana", password=NEW, confirm=NEW)
        assert done.status_code == 200 and "hana@example.com" in done.get_data(as_text=True)
        with app.app_context():
            path = last_link("hana@example.com", "verify").split("sso.test", 1)[1]
        assert "Confirm" in client.get(path).get_data(as_text=True)  # GET uses nothing
        confirmed = post_form(client, path)
        assert "account is active" in confirmed.get_data(as_text=True)
        assert login(client, "hana", NEW).status_code == 302
        taken = post_form(client, "/register", username="hana", email="other@example.com",
                          password=NEW, confirm=NEW)
        assert "taken" in taken.get_data(as_text=True)
    finally:
        app.config["SELF_REGISTRATION"] = False


def test_policy_errors_in_chinese(app: Any, client: Any) -> None:
    path = invite_bob(app)
    client.set_cookie("lang", "zh-CN")
    weak = post_form(client, path, password="abc", confirm="abc").get_data(as_text=True)
    assert "至少" in weak


def test_activation_by_code_resumes_the_pending_flow(app: Any, client: Any, erp: Any) -> None:
    in_app(app, lifecycle.invite, "chen", phone="13800138000")
    flow = Flow(client, erp)
    flow.params = flow.authorize_params()
    response = client.get("/authorize", query_string=flow.params)
    flow_id = query_of(response.headers["Location"])["flow"]
    login_page = client.get(f"/login?flow={flow_id}").get_data(as_text=True)
    assert f"/activate/code?flow={flow_id}" in login_page
    with app.app_context():
        from tests.accounts.helpers import last_code

        code = last_code("13800138000", "activation_code")
    page = client.get(f"/activate/code?flow={flow_id}").get_data(as_text=True)
    done = client.post("/activate/code", data={
        "csrf_token": csrf_of(page), "flow": flow_id, "login": "13800138000", "code": code,
        "password": NEW, "confirm": NEW})
    assert done.status_code == 302
    resumed = client.get(done.headers["Location"])
    assert resumed.headers["Location"].startswith(erp.redirect_uri)
    assert flow.token(query_of(resumed.headers["Location"])["code"]).status_code == 200


def test_expired_password_must_be_changed_when_expiry_is_on(app: Any, flow: Flow) -> None:
    from datetime import timedelta

    from sso.dbtypes import utcnow
    from sso.users.service import find_by_login

    with app.app_context():
        find_by_login("alice").password_changed_at = utcnow() - timedelta(days=100)
        db.session.commit()
    assert "code" in flow.authorize()  # expiry is off by default
    app.config["PASSWORD_MAX_AGE_DAYS"] = 90
    try:
        flow.params = flow.authorize_params(prompt="login")
        response = flow.http.get("/authorize", query_string=flow.params)
        flow_id = query_of(response.headers["Location"])["flow"]
        response = flow.http.get(flow.login("alice", PASSWORD, flow_id).headers["Location"])
        assert response.headers["Location"].startswith("/password/change")
    finally:
        app.config["PASSWORD_MAX_AGE_DAYS"] = 0


def test_sign_in_page_works_when_redis_is_down(app: Any, client: Any, alice: Any) -> None:
    from sso.extensions import RedisStore

    store = app.extensions["sso_redis"]
    app.extensions["sso_redis"] = RedisStore("redis://127.0.0.1:1/0", store.prefix)
    try:
        for _ in range(app.config["CAPTCHA_AFTER"] + 1):
            assert login(client, "alice", "Wrong-guess-1").status_code == 200
        page = client.get("/login").get_data(as_text=True)
        assert "captcha" not in page
        assert login(client, "alice", PASSWORD).status_code == 302
    finally:
        app.extensions["sso_redis"] = store


def test_must_change_user_is_sent_from_the_account_page(app: Any, client: Any) -> None:
    with app.app_context():
        create_user("alice", email="alice@example.com", password=PASSWORD, must_change=True)
        db.session.commit()
    assert login(client, "alice", PASSWORD).status_code == 302
    assert client.get("/").headers["Location"] == "/password/change"
    page = client.get("/password/change").get_data(as_text=True)
    done = client.post("/password/change", data={
        "csrf_token": csrf_of(page), "current": PASSWORD, "password": NEW, "confirm": NEW})
    assert "Your password has been changed." in done.get_data(as_text=True)
    assert client.get("/").status_code == 200
    with app.app_context():
        assert messages("alice@example.com", "password-changed")
