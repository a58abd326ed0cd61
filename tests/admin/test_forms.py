"""Bad input on every console form: the form comes back (400) with the error in the admin's
language, and nothing changes."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask

from tests.admin.conftest import csrf

A = "{a}"

#: (path, form, English message, Chinese message)
BAD_FORMS: list[tuple[str, dict[str, str], str, str]] = [
    ("/admin/users/new", {"username": "x", "email": "x@example.com", "invite_by": "email"},
     "username: 2-64 characters", "用户名：2-64 个字符"),
    ("/admin/users/new", {"username": "newbie", "invite_by": "email"},
     "an invitation needs an email address or a mobile number", "邀请需要邮箱或手机号"),
    ("/admin/users/new", {"username": "newbie", "email": "a_user@example.com",
                          "invite_by": "email"},
     "a user with that username or email already exists", "已存在使用该用户名或邮箱的用户"),
    ("/admin/users/new", {"username": "newbie", "invite_by": "password"},
     "password: required", "密码：不发邀请的账号必须填写"),
    ("/admin/users/new", {"username": "newbie", "email": "n@example.com",
                          "invite_by": "carrier-pigeon"},
     "invite: email, sms or password", "开通方式：邮件、短信或密码"),
    ("/admin/users/{a}/edit", {"email": "not-an-email"},
     "email: not a valid address", "邮箱：地址无效"),
    ("/admin/users/{a}/edit", {"phone": "call me"},
     "phone: digits only", "手机号：只能是数字"),
    ("/admin/users/{a}/edit", {"email": "b_user@example.com"},
     "a user with that username or email already exists", "已存在使用该用户名或邮箱的用户"),
    ("/admin/users/{a}/status", {"action": "explode"},
     "action: disable, enable or unlock", "操作：停用、启用或解锁"),
    ("/admin/users/{root}/status", {"action": "disable"},
     "you cannot disable yourself", "不能停用自己"),
    ("/admin/users/{root}/freeze", {}, "you cannot freeze yourself", "不能冻结自己"),
    ("/admin/users/{a}/roles", {"app": "app-a", "role": "no-such-role"},
     "the app has no role named no-such-role; define it first",
     "该应用没有名为 no-such-role 的角色"),
    ("/admin/users/{a}/admin", {"role": "app_admin"},
     "an app admin needs the app", "应用管理员需要指定应用"),
    ("/admin/users/bulk", {"action": "disable"}, "Select at least one user.",
     "请至少选择一个用户。"),
    ("/admin/users/bulk", {"action": "explode", "user": "{a}"},
     "action: disable, enable or unlock", "操作：停用、启用或解锁"),
    ("/admin/apps/new", {"name": "", "redirect_uris": "https://x.example.com/cb"},
     "name: required", "名称：必填"),
    ("/admin/apps/new", {"name": "X", "redirect_uris": "javascript:alert(1)",
                         "grant_type": "authorization_code", "id_token_alg": "RS256"},
     "javascript:alert(1): use https", "javascript:alert(1)：请使用 https"),
    ("/admin/apps/new", {"name": "X", "redirect_uris": "https://x.example.com/cb",
                         "id_token_alg": "HS256"},
     "ID-token algorithm: RS256 or ES256", "ID 令牌算法：RS256 或 ES256"),
    ("/admin/apps/new", {"name": "X", "redirect_uris": "https://x.example.com/cb",
                         "grant_type": "authorization_code", "id_token_alg": "RS256",
                         "activation": "sometimes"},
     "activation must be one of auto, approval, invite", "激活方式必须是"),
    ("/admin/apps/new", {"name": "X", "redirect_uris": "https://x.example.com/cb",
                         "grant_type": "authorization_code", "id_token_alg": "RS256",
                         "events_endpoint": "ftp://x.example.com/events"},
     "events endpoint: an absolute https URL is required", "事件端点：需要完整的 https 地址"),
    ("/admin/apps/app-a/settings", {"activation": "sometimes"},
     "activation: auto, approval or invite", "激活方式：自动、审批或邀请"),
    ("/admin/apps/app-a/settings", {"activation": "auto", "logo_uri": "http://x/logo.png"},
     "logo URI: use https", "徽标地址：请使用 https"),
    ("/admin/apps/app-a/rotate", {"overlap_hours": "-1"}, "overlap: 0 to 720 hours",
     "重叠时间：0 到 720 小时"),
    ("/admin/apps/app-a/rotate", {"overlap_hours": "9999"}, "overlap: 0 to 720 hours",
     "重叠时间：0 到 720 小时"),
    ("/admin/apps/app-a/delete", {"confirm": "app-b"},
     "type the app's client_id to delete it", "请输入应用的 client_id 以删除"),
    ("/admin/queue", {"decision": "approve"}, "Select at least one request.",
     "请至少选择一个申请。"),
    ("/admin/queue", {"decision": "maybe", "item": "app:app-a:{a}"},
     "decision: approve or deny", "决定：批准或拒绝"),
    ("/admin/users/import", {}, "Choose a CSV or XLSX file.", "请选择 CSV 或 XLSX 文件。"),
    ("/admin/users/import/expired-id", {}, "this import expired; upload the file again",
     "本次导入已过期；请重新上传文件"),
]


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_every_form_refuses_bad_input_readably(app: Flask, admins: dict[str, Any],
                                               as_admin: Any, language: str) -> None:
    ids = {"a": admins["ids"]["a_user"], "root": admins["ids"]["root"]}
    http = as_admin("root")
    token = csrf(http)
    problems = []
    for path, form, english, chinese in BAD_FORMS:
        data = {k: v.format(**ids) for k, v in form.items()}
        answer = http.post(path.format(**ids), data={"csrf_token": token, **data},
                           headers={"Accept-Language": language})
        text = answer.get_data(as_text=True)
        want = english if language == "en" else chinese
        if answer.status_code != 400 or want not in text.replace("&#39;", "'"):
            problems.append(f"{path} {form}: {answer.status_code}, {want!r} not shown")
    assert not problems, "\n".join(problems)
    from sso.extensions import db
    from sso.oidc.models import Client
    from sso.users.models import User

    with app.app_context():
        assert db.session.get(User, ids["a"]).email == "a_user@example.com"
        assert db.session.get(Client, "app-a") is not None
        assert db.session.query(User).filter_by(username="newbie").count() == 0


BAD_FILES = [
    ("people.txt", b"username\nx\n", "file: a .csv or .xlsx file"),
    ("people.csv", b"", "file: empty"),
    ("people.csv", b"login,mail\nx,y\n", "file: the first row must name the columns"),
    ("people.csv", b"\xff\xfe\x00\x00garbage", "file: not"),
    ("people.xlsx", b"PK\x03\x04 not a workbook", "file: not an XLSX workbook"),
    ("people.csv", b"username,email\n" + b"u,u@example.com\n" * 10001,
     "file: more than 10000 rows"),
]


@pytest.mark.parametrize("name, body, message", BAD_FILES, ids=[m for _n, _b, m in BAD_FILES])
def test_bad_import_files_are_refused(admins: dict[str, Any], as_admin: Any, name: str,
                                      body: bytes, message: str) -> None:
    http = as_admin("root")
    answer = http.post("/admin/users/import", data={
        "csrf_token": csrf(http), "file": (io.BytesIO(body), name)},
        content_type="multipart/form-data")
    assert answer.status_code == 400
    assert message in answer.get_data(as_text=True)


def test_bad_audit_filters_are_refused(admins: dict[str, Any], as_admin: Any) -> None:
    http = as_admin("auditor")
    for query, message in [("since=yesterday", "since: not a date or time"),
                           ("until=2026-13-40", "until: not a date or time"),
                           ("since=2026-12-02&until=2026-12-01", "since: after until"),
                           ("result=maybe", "result: success or failure")]:
        answer = http.get(f"/admin/audit?{query}")
        assert answer.status_code == 400, query
        assert message in answer.get_data(as_text=True), query
        assert http.get(f"/admin/audit/export.csv?{query}").status_code == 400
