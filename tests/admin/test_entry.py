"""Who may enter the console, and the second factor it asks for."""

from __future__ import annotations

from typing import Any

from flask import Flask

from tests.admin.conftest import sign_in
from tests.conftest import query_of


def test_no_session_goes_to_sign_in_and_back(client: Any, admins: Any) -> None:
    answer = client.get("/admin/users?q=a")
    assert answer.status_code == 302
    assert answer.location.startswith("/login?")
    assert query_of(answer.location)["next"] == "/admin/users?q=a"


def test_password_only_session_is_sent_to_the_second_factor(app: Flask, admins: Any) -> None:
    http = app.test_client()
    sign_in(app, http, "root", second_factor=False)
    answer = http.get("/admin/")
    assert answer.status_code == 302
    assert answer.location.startswith("/mfa/verify?")
    assert query_of(answer.location)["next"] == "/admin/"


def test_stale_second_factor_is_asked_again(app: Flask, admins: Any) -> None:
    http = app.test_client()
    sign_in(app, http, "root", factor_age=app.config["ADMIN_IDLE"] + 60)
    answer = http.get("/admin/apps")
    assert answer.status_code == 302 and answer.location.startswith("/mfa/verify?")
    assert query_of(answer.location)["next"] == "/admin/apps"


def test_activity_keeps_the_console_open(app: Flask, admins: Any) -> None:
    http = app.test_client()
    sign_in(app, http, "root", factor_age=app.config["ADMIN_IDLE"] - 5)
    assert http.get("/admin/").status_code == 200
    # The visit counts as activity: the factor ages past the idle time, the console stays.
    assert http.get("/admin/users").status_code == 200


def test_plain_user_is_refused(as_admin: Any, admins: Any) -> None:
    answer = as_admin("plain").get("/admin/")
    assert answer.status_code == 403


def test_chinese_console(as_admin: Any, admins: Any) -> None:
    http = as_admin("root")
    page = http.get("/admin/", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "管理控制台" in page and "用户" in page


def test_console_keeps_the_strict_csp(as_admin: Any, admins: Any) -> None:
    answer = as_admin("root").get("/admin/users")
    csp = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
