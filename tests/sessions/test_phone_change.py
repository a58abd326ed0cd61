"""A new mobile number on the profile page, confirmed by a code sent by SMS to that number:
the code works once, for 10 minutes, for 5 tries; a number another account has gets the same
answer when the code is sent and a neutral refusal only when it is confirmed; the old number
is told; both steps are audited. On SQLite and PostgreSQL (the ``app`` fixture)."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.conftest import Flow, csrf_of

NEW = "+8613900000002"


def _sms(app: Any, purpose: str) -> list[Any]:
    from sso.extensions import db
    from sso.outbox import OutboxMessage

    with app.app_context():
        found = db.session.scalars(db.select(OutboxMessage).where(
            OutboxMessage.purpose == purpose).order_by(OutboxMessage.id)).all()
        db.session.expunge_all()
        db.session.remove()
        return found


def _code(app: Any) -> str:
    return str(_sms(app, "phone_change_code")[-1].payload["params"]["code"])


def _user(app: Any, login: str = "alice") -> Any:
    from sso.extensions import db
    from sso.users.service import find_by_login

    with app.app_context():
        user = find_by_login(login)
        db.session.expunge(user)
        db.session.remove()
        return user


def _events(app: Any, event: str) -> list[tuple[str, dict[str, Any]]]:
    from sso.audit import AuditEvent
    from sso.extensions import db

    with app.app_context():
        found = [(e.outcome, dict(e.details or {})) for e in db.session.scalars(
            db.select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id))]
        db.session.remove()
        return found


def _signed_in(client: FlaskClient, erp: Any) -> str:
    Flow(client, erp).authorize()
    return csrf_of(client.get("/account/profile").get_data(as_text=True))


def _ask(client: FlaskClient, csrf: str, phone: str = NEW) -> Any:
    return client.post("/account/phone", data={"csrf_token": csrf, "phone": phone})


def _confirm(client: FlaskClient, csrf: str, code: str) -> Any:
    return client.post("/account/phone/confirm", data={"csrf_token": csrf, "code": code})


def test_the_right_code_changes_the_number_and_tells_the_old_one(
        app: Any, client: FlaskClient, erp: Any, make_user: Any) -> None:
    make_user("alice", phone="+8613800000001")
    csrf = _signed_in(client, erp)
    asked = _ask(client, csrf, "+86 139-0000-0002")  # normalised as everywhere else
    assert asked.status_code == 302
    page = client.get(asked.headers["Location"]).get_data(as_text=True)
    assert 'id="phone-confirm"' in page and NEW in page
    [sent] = _sms(app, "phone_change_code")
    assert sent.recipient == NEW
    code = _code(app)
    assert code in sent.body_text and len(code) == 6
    assert _user(app).phone == "+8613800000001"  # nothing changes before the code

    done = _confirm(client, csrf, code)
    assert done.status_code == 302
    user = _user(app)
    assert user.phone == NEW and user.phone_verified
    [notice] = _sms(app, "phone_changed")
    assert notice.recipient == "+8613800000001" and "0002" in notice.body_text
    assert code not in notice.body_text
    assert "Your mobile number is now" in client.get(done.headers["Location"]).get_data(
        as_text=True)
    assert [o for o, _ in _events(app, "account.phone_change_request")] == ["success"]
    assert [o for o, _ in _events(app, "account.phone_change")] == ["success"]
    activity = client.get("/account/activity").get_data(as_text=True)
    assert "Mobile number changed" in activity
    assert "Asked for a code to change the mobile number" in activity

    again = _confirm(client, csrf, code)  # used once
    assert again.status_code == 400
    assert "expired or has been used up" in again.get_data(as_text=True)


def test_a_first_number_sends_no_notice(app: Any, client: FlaskClient, erp: Any,
                                        alice: Any) -> None:
    csrf = _signed_in(client, erp)
    _ask(client, csrf)
    assert _confirm(client, csrf, _code(app)).status_code == 302
    assert _user(app).phone == NEW and _user(app).phone_verified
    assert _sms(app, "phone_changed") == []


def test_wrong_codes_count_and_the_fifth_ends_the_code(
        app: Any, client: FlaskClient, erp: Any, alice: Any) -> None:
    csrf = _signed_in(client, erp)
    _ask(client, csrf)
    code = _code(app)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1):
        answer = _confirm(client, csrf, wrong)
        assert answer.status_code == 400
        assert f"Tries left: {left}." in answer.get_data(as_text=True)
    assert _confirm(client, csrf, "12x").status_code == 400  # malformed is a try too
    late = _confirm(client, csrf, code)  # the right code after five tries: gone
    assert late.status_code == 400
    assert "expired or has been used up" in late.get_data(as_text=True)
    assert _user(app).phone is None
    outcomes = [d.get("reason") for o, d in _events(app, "account.phone_change")]
    assert outcomes == ["wrong"] * 5 + ["gone"]


def test_an_expired_code_does_not_work(app: Any, client: FlaskClient, erp: Any,
                                       alice: Any) -> None:
    from sso.extensions import get_redis
    from sso.selfservice import phone

    csrf = _signed_in(client, erp)
    _ask(client, csrf)
    code = _code(app)
    with app.app_context():
        key = phone._key(_user(app).id)
        assert 0 < get_redis().client.ttl(key) <= 600  # 10 minutes at most
        get_redis().client.pexpire(key, 1)  # as if 10 minutes had passed
        while get_redis().client.exists(key):
            pass
    answer = _confirm(client, csrf, code)
    assert answer.status_code == 400
    assert "expired or has been used up" in answer.get_data(as_text=True)
    assert 'id="phone-confirm"' not in answer.get_data(as_text=True)
    assert _user(app).phone is None


def test_a_new_code_replaces_the_previous_one(app: Any, client: FlaskClient, erp: Any,
                                             alice: Any) -> None:
    csrf = _signed_in(client, erp)
    _ask(client, csrf, "+8613900000009")
    first = _code(app)
    _ask(client, csrf)
    second = _code(app)
    if first != second:
        assert _confirm(client, csrf, first).status_code == 400
    assert _confirm(client, csrf, second).status_code == 302
    assert _user(app).phone == NEW


def test_a_number_another_account_has_is_refused_only_at_confirmation(
        app: Any, client: FlaskClient, erp: Any, alice: Any, make_user: Any) -> None:
    make_user("bob", phone=NEW)
    csrf = _signed_in(client, erp)
    taken = _ask(client, csrf, NEW)
    free = _ask(client, csrf, "+8613900000003")
    assert taken.status_code == free.status_code == 302  # the same answer
    assert taken.headers["Location"] == free.headers["Location"]
    _ask(client, csrf, NEW)
    refused = _confirm(client, csrf, _code(app))
    assert refused.status_code == 409
    text = refused.get_data(as_text=True)
    assert "cannot be used for your account" in text and "bob" not in text.lower()
    assert _user(app).phone is None and _user(app, "bob").phone == NEW
    assert _events(app, "account.phone_change")[-1] == ("failure", {"reason": "taken"})


def test_codes_are_rate_limited_per_user(app: Any, client: FlaskClient, erp: Any,
                                         alice: Any) -> None:
    csrf = _signed_in(client, erp)
    limit = int(str(app.config["RATE_LIMIT_PHONE_CHANGE_USER"]).split("/")[0])
    for _ in range(limit):
        assert _ask(client, csrf).status_code == 302
    refused = _ask(client, csrf)
    assert refused.status_code == 429
    assert "Too many codes" in refused.get_data(as_text=True)
    assert len(_sms(app, "phone_change_code")) == limit
    assert _events(app, "account.phone_change_request")[-1] == (
        "failure", {"reason": "rate_limited"})


def test_bad_phone_input(app: Any, client: FlaskClient, erp: Any, make_user: Any) -> None:
    make_user("alice", phone=NEW)
    from sso.extensions import db
    from sso.users.service import find_by_login

    with app.app_context():
        find_by_login("alice").phone_verified = True
        db.session.commit()
    csrf = _signed_in(client, erp)
    for phone, message in (("", "Enter a mobile number"), ("12345", "Enter a mobile number"),
                           ("+86 abc", "Enter a mobile number"), ("9" * 40, "Enter a mobile"),
                           (NEW, "already your number")):
        answer = _ask(client, csrf, phone)
        assert answer.status_code == 400, phone
        assert message in answer.get_data(as_text=True)
    assert _sms(app, "phone_change_code") == []
    assert client.post("/account/phone", data={"phone": NEW}).status_code == 400  # no CSRF
    assert client.post("/account/phone/confirm", data={"code": "1"}).status_code == 400
    no_pending = _confirm(client, csrf, "123456")
    assert no_pending.status_code == 400


def test_cancel_and_signed_out(app: Any, client: FlaskClient, erp: Any, alice: Any) -> None:
    csrf = _signed_in(client, erp)
    _ask(client, csrf)
    code = _code(app)
    cancelled = client.post("/account/phone/confirm", data={"csrf_token": csrf, "cancel": "1"})
    assert cancelled.status_code == 302
    assert 'id="phone-confirm"' not in client.get("/account/profile").get_data(as_text=True)
    assert _confirm(client, csrf, code).status_code == 400
    stranger = app.test_client()
    page = stranger.get("/login").get_data(as_text=True)
    answer = stranger.post("/account/phone", data={"csrf_token": csrf_of(page), "phone": NEW})
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]


def test_the_page_in_chinese(app: Any, client: FlaskClient, erp: Any, alice: Any) -> None:
    csrf = _signed_in(client, erp)
    _ask(client, csrf)
    client.set_cookie("lang", "zh-CN")
    page = client.get("/account/profile").get_data(as_text=True)
    assert "新手机号" in page and "验证码" in page
    wrong = _confirm(client, csrf, "000000" if _code(app) != "000000" else "111111")
    assert "剩余尝试次数：4" in wrong.get_data(as_text=True)
