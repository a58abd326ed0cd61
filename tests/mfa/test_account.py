"""Managing two-step verification from the account page, and the admin commands."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import select

from sso.cli import cli
from sso.dbtypes import utcnow
from tests.conftest import PASSWORD, Flow, csrf_of
from tests.mfa.test_flow import Driver


def _account(client: Any) -> str:
    page = client.get("/")
    assert page.status_code == 200
    return page.get_data(as_text=True)


def _events(app: Any, name: str) -> list[Any]:
    from sso.audit import AuditEvent
    from sso.extensions import db

    with app.app_context():
        return [(e.outcome, e.details) for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.id))]


def test_account_page_offers_setup_then_shows_status(client: Any, flow: Flow) -> None:
    Driver(flow).run()
    page = _account(client)
    assert 'id="mfa-setup"' in page and "Off." in page
    driver = Driver(flow)
    landed = driver.enrol("/mfa/enrol")
    assert landed.request.path == "/"
    page = _account(client)
    assert "On since" in page and "Recovery codes left: 10" in page


def test_regenerate_needs_a_code(client: Any, flow: Flow, enrol: Any, app: Any) -> None:
    enrolled = enrol("alice")
    Driver(flow, lambda: enrolled.code()).run()
    csrf = csrf_of(_account(client))
    refused = client.post("/mfa/recovery-codes", data={"csrf_token": csrf, "code": "000000"
                                                        if enrolled.code(1) != "000000"
                                                        else "111111"})
    assert refused.headers["Location"].endswith("mfa=code-wrong")
    assert "That code is not correct" in client.get(refused.headers["Location"]).get_data(
        as_text=True)
    page = client.post("/mfa/recovery-codes", data={"csrf_token": csrf,
                                                    "code": enrolled.code(1)})
    new_codes = re.findall(r"<li><code>([a-z2-7-]{19})</code></li>", page.get_data(as_text=True))
    assert len(new_codes) == 10 and not set(new_codes) & set(enrolled.recovery_codes)
    assert [o for o, _d in _events(app, "mfa.recovery_codes.regenerate")] == ["success"]


def test_remove_needs_password_and_code(client: Any, flow: Flow, enrol: Any, app: Any) -> None:
    enrolled = enrol("alice")
    Driver(flow, lambda: enrolled.code()).run()
    csrf = csrf_of(_account(client))
    wrong_password = client.post("/mfa/remove", data={"csrf_token": csrf, "password": "nope",
                                                      "code": enrolled.code(1)})
    assert wrong_password.headers["Location"].endswith("mfa=password")
    no_code = client.post("/mfa/remove", data={"csrf_token": csrf, "password": PASSWORD,
                                               "code": ""})
    assert no_code.headers["Location"].endswith("mfa=code-malformed")
    done = client.post("/mfa/remove", data={"csrf_token": csrf, "password": PASSWORD,
                                            "code": enrolled.code(1)})
    assert done.headers["Location"].endswith("mfa=removed")
    assert 'id="mfa-setup"' in _account(client)
    assert [o for o, _d in _events(app, "mfa.remove")] == ["failure", "success"]


def test_devices_are_listed_and_revoked(client: Any, flow: Flow, enrol: Any) -> None:
    enrolled = enrol("alice")
    driver = Driver(flow, lambda: enrolled.code())
    driver.remember = True
    driver.run()
    page = _account(client)
    device_id = re.search(r'name="device" value="([^"]+)"', page).group(1)
    done = client.post("/mfa/devices/revoke", data={"csrf_token": csrf_of(page),
                                                    "device": device_id})
    assert done.headers["Location"].endswith("mfa=device-revoked")
    assert 'name="device"' not in _account(client)
    # The revoked device is asked for a code again.
    client.delete_cookie("sso_session")
    again = Driver(flow, lambda: enrolled.code(1))
    location = again.until_verify()
    assert client.get(location).status_code == 200


def run(runner: Any, *args: str, ok: bool = True) -> Any:
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result


def test_admin_reset(runner: Any, alice: Any, enrol: Any, app: Any) -> None:
    enrol("alice")
    status = json.loads(run(runner, "mfa", "status", "alice").output)
    assert status["enrolled"] is True and status["recovery_codes_left"] == 10
    assert "reset" in run(runner, "users", "reset-mfa", "alice").output
    assert json.loads(run(runner, "mfa", "status", "alice").output)["enrolled"] is False
    assert _events(app, "mfa.reset")[0][1]["had_authenticator"] is True
    run(runner, "users", "reset-mfa", "nobody", ok=False)


def test_admin_reset_ends_the_users_sessions_unless_asked_not_to(runner: Any, flow: Flow,
                                                                 app: Any) -> None:
    """A lost phone may hold a signed-in session: resetting MFA signs the user out."""
    flow.login()
    assert flow.http.get("/").status_code == 200
    run(runner, "users", "reset-mfa", "alice", "--keep-sessions")
    assert flow.http.get("/").status_code == 200
    assert "1 session(s) ended" in run(runner, "users", "reset-mfa", "alice").output
    assert flow.http.get("/").status_code == 302


def test_require_for_user_on_and_off(runner: Any, alice: Any, app: Any) -> None:
    run(runner, "users", "require-mfa", "alice")
    assert json.loads(run(runner, "mfa", "status", "alice").output)["required"] is True
    run(runner, "users", "require-mfa", "alice", "--off")
    assert json.loads(run(runner, "mfa", "status", "alice").output)["required"] is False
    assert [d["required"] for _o, d in _events(app, "mfa.policy.user")] == [True, False]


def test_clients_create_with_mfa_required(runner: Any, app: Any) -> None:
    from sso.extensions import db
    from sso.oidc.models import Client

    created = json.loads(run(runner, "clients", "create", "--name", "HR", "--redirect-uri",
                             "https://hr.example.com/cb", "--mfa-required", "--json").output)
    with app.app_context():
        assert db.session.get(Client, created["client_id"]).mfa_required is True
    changed = json.loads(run(runner, "clients", "set-mfa", created["client_id"],
                             "--not-required").output)
    assert changed["mfa_required"] is False and changed["remember_device"] is True
    run(runner, "clients", "set-mfa", created["client_id"], ok=False)
    run(runner, "clients", "set-mfa", "no-such-client", "--required", ok=False)


@pytest.mark.parametrize("args", [["roles", "require-mfa", "nope", "x"]])
def test_bad_cli_input(runner: Any, args: list[str]) -> None:
    assert "Error" in run(runner, *args, ok=False).output


def test_rotate_key_command(runner: Any, app: Any, alice: Any, enrol: Any) -> None:
    enrolled = enrol("alice")
    previous = app.config.get("MFA_ENCRYPTION_KEYS")
    try:
        app.config["MFA_ENCRYPTION_KEYS"] = ["new-key-material-0123456789",
                                             app.config["SECRET_KEY"]]
        assert "re-encrypted 1" in run(runner, "mfa", "rotate-key").output
        app.config["MFA_ENCRYPTION_KEYS"] = "new-key-material-0123456789"
        with app.app_context():
            from sso.mfa import service
            from sso.users.service import find_by_login

            user = find_by_login("alice")
            assert service.verify(user, enrolled.code(), origin=None, now=utcnow()) == "otp"
        app.config["MFA_ENCRYPTION_KEYS"] = "some-other-key-0123456789"
        assert "nothing was changed" in run(runner, "mfa", "rotate-key", ok=False).output
    finally:
        app.config["MFA_ENCRYPTION_KEYS"] = previous
