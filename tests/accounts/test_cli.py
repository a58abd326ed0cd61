"""``sso users ...`` commands of the account lifecycle."""

from __future__ import annotations

from typing import Any

from sso.accounts import lifecycle
from sso.accounts.service import authenticate
from sso.cli import cli
from sso.extensions import db
from sso.users.service import find_by_login
from tests.accounts.helpers import in_app, last_link, messages
from tests.conftest import PASSWORD

NEW = "Fresh-Lantern-42"


def test_invite_and_resend(app: Any, runner: Any) -> None:
    result = runner.invoke(cli, ["users", "invite", "--username", "bob", "--email",
                                 "bob@example.com", "--name", "Bob"])
    assert result.exit_code == 0, result.output
    assert "activation sent by email" in result.output
    with app.app_context():
        first = last_link("bob@example.com", "activation")
    result = runner.invoke(cli, ["users", "resend-invite", "bob"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert last_link("bob@example.com", "activation") != first
        assert lifecycle.check_activation_link(first.rsplit("/", 1)[1]).state == "used"


def test_invite_by_sms_and_refusals(app: Any, runner: Any) -> None:
    result = runner.invoke(cli, ["users", "invite", "--username", "chen", "--phone",
                                 "13800138000", "--locale", "zh-CN"])
    assert "by sms" in result.output
    with app.app_context():
        assert "您的激活验证码" in messages("13800138000", "activation_code")[0].body_text
    no_contact = runner.invoke(cli, ["users", "invite", "--username", "dana"])
    assert no_contact.exit_code != 0 and "email address or a mobile number" in no_contact.output
    active = runner.invoke(cli, ["users", "create", "--username", "erin", "--email",
                                 "erin@example.com", "--password", PASSWORD])
    assert active.exit_code == 0
    refused = runner.invoke(cli, ["users", "resend-invite", "erin"])
    assert refused.exit_code != 0 and "not invited" in refused.output


def test_create_with_must_change_and_weak_passwords(app: Any, runner: Any) -> None:
    weak = runner.invoke(cli, ["users", "create", "--username", "fay", "--password",
                               "password1"])
    assert weak.exit_code != 0 and "common" in weak.output
    made = runner.invoke(cli, ["users", "create", "--username", "fay", "--password", PASSWORD,
                               "--must-change"])
    assert made.exit_code == 0, made.output
    with app.app_context():
        assert find_by_login("fay").must_change_password
    short = runner.invoke(cli, ["users", "set-password", "fay", "--password", "Ab1!"])
    assert short.exit_code != 0 and "at least 10" in short.output


def test_disable_enable_unlock(app: Any, runner: Any, alice: Any) -> None:
    assert "disabled" in runner.invoke(cli, ["users", "disable", "alice"]).output
    with app.app_context():
        assert authenticate("alice", PASSWORD).reason == "disabled"
    assert runner.invoke(cli, ["users", "enable", "alice"]).exit_code == 0
    with app.app_context():
        for _ in range(app.config["LOCKOUT_THRESHOLD"]):
            authenticate("alice", "Wrong-guess-1")
        db.session.commit()
        assert authenticate("alice", PASSWORD).reason == "locked"
    assert "unlocked" in runner.invoke(cli, ["users", "unlock", "alice"]).output
    with app.app_context():
        assert authenticate("alice", PASSWORD).ok
    assert runner.invoke(cli, ["users", "unlock", "nobody"]).exit_code != 0


def test_approval_queue(app: Any, runner: Any) -> None:
    app.config["REGISTRATION_APPROVAL"] = True
    try:
        for name in ("gina", "hugo"):
            in_app(app, lifecycle.register, name, f"{name}@example.com", NEW)
            with app.app_context():
                token = last_link(f"{name}@example.com", "verify").rsplit("/", 1)[1]
            in_app(app, lifecycle.verify_registration, token)
    finally:
        app.config["REGISTRATION_APPROVAL"] = False
    listed = runner.invoke(cli, ["users", "pending"]).output
    assert "gina" in listed and "hugo" in listed
    assert runner.invoke(cli, ["users", "approve", "gina"]).exit_code == 0
    assert runner.invoke(cli, ["users", "deny", "hugo"]).exit_code == 0
    again = runner.invoke(cli, ["users", "approve", "gina"])
    assert again.exit_code != 0 and "not pending" in again.output
    with app.app_context():
        assert authenticate("gina", NEW).ok
        assert find_by_login("hugo") is None
