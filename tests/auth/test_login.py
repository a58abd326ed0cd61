"""The password sign-in page: same answer for unknown users, CSRF, headers, limits, language."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import PASSWORD, Flow, csrf_of


def _post_login(client: Any, username: str, password: str) -> Any:
    page = client.get("/login")
    return client.post("/login", data={"csrf_token": csrf_of(page.get_data(as_text=True)),
                                       "username": username, "password": password})


def test_username_or_email_any_case_signs_in(client: Any, alice: Any) -> None:
    for login in ("alice", "ALICE", "alice@example.com", " Alice@Example.com "):
        response = _post_login(client, login, PASSWORD)
        assert response.status_code == 302, login
        assert response.headers["Location"] == "/"


def test_unknown_user_and_wrong_password_get_the_same_answer(client: Any, alice: Any) -> None:
    unknown = _post_login(client, "mallory", PASSWORD).get_data(as_text=True)
    wrong = _post_login(client, "alice", "not-the-password").get_data(as_text=True)
    assert "Incorrect username or password." in unknown
    assert "Incorrect username or password." in wrong
    assert unknown.replace("mallory", "alice") == wrong


def test_failures_are_audited_without_the_password(client: Any, alice: Any, app: Any) -> None:
    _post_login(client, "alice", "Secret-typo-123")
    with app.app_context():
        from sso.audit import AuditEvent
        from sso.extensions import db

        events = db.session.scalars(db.select(AuditEvent)).all()
        failure = [e for e in events if e.event == "signin.password"][0]
        assert failure.outcome == "failure" and failure.user_id == alice.id
        assert "Secret-typo" not in str(failure.details) + str(failure.subject)


def test_missing_csrf_token_is_refused_with_a_readable_page(client: Any, alice: Any) -> None:
    response = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert "form expired" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_session_cookie_flags(client: Any, alice: Any) -> None:
    response = _post_login(client, "alice", PASSWORD)
    cookie = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("sso_session=")]
    assert cookie and "HttpOnly" in cookie[0] and "SameSite=Lax" in cookie[0]


def test_https_issuer_uses_secure_host_only_cookies(app_config: dict[str, Any]) -> None:
    from sso import create_app

    secure_app = create_app({**app_config, "ISSUER": "https://sso.example.com"})
    assert secure_app.config["SESSION_COOKIE_SECURE"] is True
    with secure_app.test_request_context():
        from sso.flow.passage import session_cookie_name

        assert session_cookie_name() == "__Host-sso_session"


def test_pages_forbid_framing_and_are_not_cached(client: Any) -> None:
    response = client.get("/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_too_many_attempts_from_one_address_are_throttled(client: Any, app: Any) -> None:
    app.config["RATE_LIMIT_LOGIN_IP"] = "3/300"
    try:
        statuses = [_post_login(client, "nobody", "x").status_code for _ in range(4)]
    finally:
        app.config["RATE_LIMIT_LOGIN_IP"] = "30/300"
    assert statuses == [200, 200, 200, 429]


def test_consecutive_failures_lock_the_account(client: Any, alice: Any, app: Any) -> None:
    app.config["CAPTCHA_AFTER"] = 0  # the picture challenge has tests of its own
    try:
        for _ in range(app.config["LOCKOUT_THRESHOLD"]):
            _post_login(client, "alice", "wrong")
        assert _post_login(client, "alice", PASSWORD).status_code == 200
        with app.app_context():
            from sso.accounts import lockout

            assert lockout.locked_for(alice.id) > 0
            lockout.unlock(alice.id)
            from sso.extensions import db

            db.session.commit()
        assert _post_login(client, "alice", PASSWORD).status_code == 302
    finally:
        app.config["CAPTCHA_AFTER"] = 3


@pytest.mark.parametrize(("accept", "expected"), [
    ("zh-CN,zh;q=0.9,en;q=0.8", "登录"),
    ("zh-TW", "登录"),
    ("en-US,en;q=0.9", "Sign in"),
    ("fr-FR", "Sign in"),
])
def test_language_follows_the_browser(client: Any, accept: str, expected: str) -> None:
    page = client.get("/login", headers={"Accept-Language": accept}).get_data(as_text=True)
    assert expected in page


def test_language_switch_is_remembered_and_not_an_open_redirect(client: Any) -> None:
    response = client.get("/lang/zh-CN?next=https://evil.example.com/")
    assert response.headers["Location"] == "/"
    page = client.get("/login", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "登录" in page


def test_disabled_user_cannot_sign_in(client: Any, alice: Any, app: Any) -> None:
    with app.app_context():
        from sso.extensions import db
        from sso.users.service import find_by_login

        find_by_login("alice").status = "disabled"
        db.session.commit()
    assert "Incorrect username or password." in _post_login(client, "alice", "wrong-guess-1"
                                                            ).get_data(as_text=True)
    # Only the right password learns the account's state.
    assert "has been disabled" in _post_login(client, "alice", PASSWORD).get_data(as_text=True)


def test_sign_in_rotates_the_session_and_survives_reuse_of_an_old_cookie(
        flow: Flow, app: Any) -> None:
    flow.authorize()
    old_cookie = flow.http.get_cookie("sso_session").value
    flow.authorize(prompt="login")
    new_cookie = flow.http.get_cookie("sso_session").value
    assert old_cookie != new_cookie
    stranger = app.test_client()
    stranger.set_cookie("sso_session", old_cookie)
    assert stranger.get("/").status_code == 302


def test_oversized_input_is_handled(client: Any) -> None:
    page = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_of(page.get_data(as_text=True)),
                                           "username": "a" * 10000, "password": "b" * 5000})
    assert response.status_code == 200
    huge = client.post("/login", data={"x": "y" * 200_000})
    assert huge.status_code == 413
