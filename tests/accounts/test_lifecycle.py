"""The account lifecycle services on the real database and Redis."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from sso.accounts import lifecycle, lockout, tokens
from sso.accounts.models import AccountToken
from sso.accounts.policy import PasswordRejected
from sso.accounts.service import AccountError, authenticate, passwords
from sso.audit import AuditEvent, Origin
from sso.dbtypes import utcnow
from sso.extensions import db
from sso.sessions import service as sessions
from sso.sessions.models import Proof
from sso.users.models import User, UserStatus
from sso.users.service import find_by_login
from tests.accounts.helpers import last_code, last_link, messages, token_of
from tests.conftest import PASSWORD

NEW = "Fresh-Lantern-42"
ORIGIN = Origin(ip="198.51.100.7", user_agent="pytest")


def password_proof() -> list[Proof]:
    """A password proved now."""
    return [Proof("pwd", utcnow())]


def invite(username: str = "bob", **kwargs: Any) -> User:
    kwargs.setdefault("email", f"{username}@example.com")
    user, _channel = lifecycle.invite(username, origin=ORIGIN, actor="cli", **kwargs)
    db.session.commit()
    return user


def test_invitation_link_activates_once(app: Any, ctx: None) -> None:
    user = invite(name="Bob")
    assert user.status == UserStatus.INVITED and user.password_hash is None
    mail = messages("bob@example.com", "activation")[-1]
    assert mail.channel == "mail" and mail.subject and "Bob" in (mail.body_html or "")
    raw = token_of(last_link("bob@example.com", "activation"))
    stored = db.session.scalars(select(AccountToken.secret_hash)).all()
    assert raw not in str(stored)  # only the hash is kept
    activated = lifecycle.activate_with_link(raw, NEW, ORIGIN)
    db.session.commit()
    assert activated.status == UserStatus.ACTIVE and activated.email_verified
    assert authenticate("bob", NEW).ok
    with pytest.raises(lifecycle.LinkError) as reused:
        lifecycle.activate_with_link(raw, "Another-Lantern-43", ORIGIN)
    assert reused.value.state == tokens.USED


def test_resend_voids_the_old_link(app: Any, ctx: None) -> None:
    user = invite()
    first = token_of(last_link("bob@example.com", "activation"))
    lifecycle.send_invitation(user, origin=ORIGIN)
    db.session.commit()
    second = token_of(last_link("bob@example.com", "activation"))
    assert first != second
    assert lifecycle.check_activation_link(first).state == tokens.USED
    assert lifecycle.activate_with_link(second, NEW).status == UserStatus.ACTIVE


@pytest.mark.parametrize("case", ["expired", "forged", "reset-link", "empty", "huge"])
def test_bad_activation_links(app: Any, ctx: None, case: str) -> None:
    invite()
    raw = token_of(last_link("bob@example.com", "activation"))
    now = None
    if case == "expired":
        now = utcnow() + timedelta(seconds=app.config["INVITE_TTL"] + 1)
        expected = tokens.EXPIRED
    elif case == "forged":
        raw = raw[:-2] + ("AA" if not raw.endswith("AA") else "BB")
        expected = tokens.UNKNOWN
    elif case == "reset-link":
        carol = find_by_login("bob")
        carol.status = UserStatus.ACTIVE
        lifecycle.request_reset("bob", origin=ORIGIN)
        carol.status = UserStatus.INVITED
        raw = token_of(last_link("bob@example.com", "reset"))
        expected = tokens.UNKNOWN
    elif case == "empty":
        raw, expected = "", tokens.UNKNOWN
    else:
        raw, expected = "x" * 5000, tokens.UNKNOWN
    with pytest.raises(lifecycle.LinkError) as refused:
        lifecycle.activate_with_link(raw, NEW, ORIGIN, now=now)
    assert refused.value.state == expected
    assert find_by_login("bob").status == UserStatus.INVITED


def test_weak_password_leaves_the_link_usable(app: Any, ctx: None) -> None:
    invite()
    raw = token_of(last_link("bob@example.com", "activation"))
    for weak in ("short1!", "password123", "Bob-is-great-1"):
        with pytest.raises(PasswordRejected):
            lifecycle.activate_with_link(raw, weak)
    assert lifecycle.check_activation_link(raw).state == tokens.VALID


def test_one_link_redeemed_at_once_by_two_requests(app: Any, ctx: None) -> None:
    invite()
    raw = token_of(last_link("bob@example.com", "activation"))
    # Both requests looked the link up and found it valid; only one UPDATE can use it.
    first = tokens.look_up_link(raw, tokens.INVITE, utcnow())
    second = tokens.look_up_link(raw, tokens.INVITE, utcnow())
    assert first.state == second.state == tokens.VALID
    assert tokens.consume(first.token, utcnow()) is True
    assert tokens.consume(second.token, utcnow()) is False


@pytest.mark.truncate  # threads: each commits on its own connection
def test_two_tabs_activating_concurrently_exactly_one_wins(app: Any, ctx: None) -> None:
    invite()
    raw = token_of(last_link("bob@example.com", "activation"))
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def tab(password: str) -> None:
        with app.app_context():
            start.wait()
            try:
                lifecycle.activate_with_link(raw, password)
                db.session.commit()
                outcomes.append("won")
            except lifecycle.LinkError:
                db.session.rollback()
                outcomes.append("lost")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=tab, args=(p,))
               for p in ("Tab-One-Lantern-1", "Tab-Two-Lantern-2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["lost", "won"]
    db.session.expire_all()
    user = find_by_login("bob")
    assert user.status == UserStatus.ACTIVE
    wins = [p for p in ("Tab-One-Lantern-1", "Tab-Two-Lantern-2")
            if passwords().verify(user.password_hash, p)]
    assert len(wins) == 1


def test_sms_code_activation_with_five_tries(app: Any, ctx: None) -> None:
    invite("chen", email=None, phone="+86 138 0013 8000")
    code = last_code("+8613800138000", "activation_code")
    assert len(code) == 6 and code.isdigit()
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(app.config["SMS_CODE_ATTEMPTS"]):
        with pytest.raises(lifecycle.LinkError) as refused:
            lifecycle.activate_with_code("+8613800138000", wrong, NEW)
        db.session.commit()
        assert refused.value.state == "wrong"
    with pytest.raises(lifecycle.LinkError) as exhausted:
        lifecycle.activate_with_code("chen", code, NEW)
    assert exhausted.value.state == "exhausted"
    db.session.rollback()
    lifecycle.send_invitation(find_by_login("chen"), origin=ORIGIN)
    db.session.commit()
    fresh = last_code("+8613800138000", "activation_code")
    user = lifecycle.activate_with_code("chen", fresh, NEW)
    assert user.status == UserStatus.ACTIVE and user.phone_verified


def test_sms_code_expires_and_belongs_to_its_user(app: Any, ctx: None) -> None:
    invite("chen", email=None, phone="13800138000")
    invite("dana", email=None, phone="13900139000")
    chen_code = last_code("13800138000", "activation_code")
    with pytest.raises(lifecycle.LinkError):
        lifecycle.activate_with_code("dana", chen_code, NEW)
    later = utcnow() + timedelta(seconds=app.config["SMS_CODE_TTL"] + 1)
    with pytest.raises(lifecycle.LinkError) as expired:
        lifecycle.activate_with_code("chen", chen_code, NEW, now=later)
    assert expired.value.state == tokens.EXPIRED


def test_invitation_needs_a_contact(app: Any, ctx: None) -> None:
    with pytest.raises(AccountError):
        lifecycle.invite("nobody")


def test_new_invitation_request_reveals_nothing(app: Any, ctx: None) -> None:
    invite()
    lifecycle.request_new_invitation("bob", ORIGIN)
    lifecycle.request_new_invitation("ghost", ORIGIN)
    db.session.commit()
    assert len(messages("bob@example.com", "activation")) == 2
    assert not messages("ghost@example.com")


def test_reset_by_link_ends_sessions_and_tells_the_user(app: Any, ctx: None,
                                                        make_user: Any) -> None:
    make_user("alice")
    alice = find_by_login("alice")
    session, _secret = sessions.sign_in(alice, password_proof(), lifetime=3600, origin=ORIGIN)
    lockout.register_failure(alice.id)
    db.session.commit()
    lifecycle.request_reset("alice@example.com", origin=ORIGIN)
    lifecycle.request_reset("nobody@example.com", origin=ORIGIN)
    db.session.commit()
    assert not messages("nobody@example.com")
    raw = token_of(last_link("alice@example.com", "reset"))
    lifecycle.reset_with_link(raw, NEW, ORIGIN)
    db.session.commit()
    assert not authenticate("alice", PASSWORD).ok
    assert authenticate("alice", NEW).ok
    db.session.refresh(session)
    assert session.ended_at is not None
    assert messages("alice@example.com", "password-changed")
    assert lockout.failures(alice.id) == 0
    with pytest.raises(lifecycle.LinkError):
        lifecycle.reset_with_link(raw, "Second-Lantern-77", ORIGIN)
    events = {e.event for e in db.session.scalars(select(AuditEvent))}
    assert {"password.reset_request", "password.reset", "session.end"} <= events


def test_reset_link_expires_after_thirty_minutes(app: Any, ctx: None, make_user: Any) -> None:
    make_user("alice")
    lifecycle.request_reset("alice", origin=ORIGIN)
    raw = token_of(last_link("alice@example.com", "reset"))
    with pytest.raises(lifecycle.LinkError) as expired:
        lifecycle.reset_with_link(raw, NEW, now=utcnow() + timedelta(minutes=31))
    assert expired.value.state == tokens.EXPIRED


def test_reset_by_sms_code(app: Any, ctx: None, make_user: Any) -> None:
    make_user("alice", phone="13700137000")
    lifecycle.request_reset("alice", tokens.SMS, ORIGIN)
    db.session.commit()
    code = last_code("13700137000", "reset_code")
    lifecycle.reset_with_code("13700137000", code, NEW, ORIGIN)
    db.session.commit()
    assert authenticate("alice", NEW).ok


def test_too_many_reset_messages_are_not_sent(app: Any, ctx: None, make_user: Any) -> None:
    make_user("alice")
    for _ in range(6):
        lifecycle.request_reset("alice", origin=ORIGIN)
    db.session.commit()
    assert len(messages("alice@example.com", "reset")) == 3


def test_change_password_keeps_this_session_and_refuses_reuse(app: Any, ctx: None,
                                                              make_user: Any) -> None:
    make_user("alice")
    alice = find_by_login("alice")
    mine, _ = sessions.sign_in(alice, password_proof(), lifetime=3600, origin=ORIGIN)
    other, _ = sessions.sign_in(alice, password_proof(), lifetime=3600, origin=ORIGIN)
    db.session.commit()
    with pytest.raises(lifecycle.LinkError):
        lifecycle.change_password(alice, "wrong", NEW, ORIGIN, mine.id)
    with pytest.raises(PasswordRejected):
        lifecycle.change_password(alice, PASSWORD, PASSWORD, ORIGIN, mine.id)
    lifecycle.change_password(alice, PASSWORD, NEW, ORIGIN, mine.id)
    db.session.commit()
    assert mine.ended_at is None and other.ended_at is not None


def test_registration_with_approval(app: Any, ctx: None, make_user: Any) -> None:
    make_user("alice")
    app.config["REGISTRATION_APPROVAL"] = True
    try:
        user = lifecycle.register("frank", "frank@example.com", NEW, "Frank", ORIGIN)
        assert lifecycle.register("alice2", "ALICE@example.com", NEW) is None  # taken email
        db.session.commit()
        assert not messages("alice@example.com", "verify")
        assert authenticate("frank", NEW).reason == "invited"
        raw = token_of(last_link("frank@example.com", "verify"))
        lifecycle.verify_registration(raw, ORIGIN)
        db.session.commit()
        assert user.status == UserStatus.PENDING and user.email_verified
        assert authenticate("frank", NEW).reason == "pending"
        assert authenticate("frank", "Wrong-Lantern-1").reason == "invalid"
        lifecycle.approve(user, actor="cli")
        db.session.commit()
        assert authenticate("frank", NEW).ok
        assert messages("frank@example.com", "approved")
        with pytest.raises(AccountError):
            lifecycle.approve(user)
    finally:
        app.config["REGISTRATION_APPROVAL"] = False


def test_denied_registration_is_removed(app: Any, ctx: None) -> None:
    app.config["REGISTRATION_APPROVAL"] = True
    try:
        user = lifecycle.register("gina", "gina@example.com", NEW)
        lifecycle.verify_registration(token_of(last_link("gina@example.com", "verify")))
        lifecycle.deny(user, actor="cli")
        db.session.commit()
    finally:
        app.config["REGISTRATION_APPROVAL"] = False
    assert find_by_login("gina") is None


def test_disable_ends_sessions_and_enable_restores(app: Any, ctx: None,
                                                   make_user: Any) -> None:
    make_user("alice")
    alice = find_by_login("alice")
    session, secret = sessions.sign_in(alice, password_proof(), lifetime=3600, origin=ORIGIN)
    db.session.commit()
    assert lifecycle.disable(alice, actor="cli") == 1
    db.session.commit()
    assert sessions.find_by_secret(secret) is None
    assert authenticate("alice", PASSWORD).reason == "disabled"
    lifecycle.enable(alice, actor="cli")
    assert authenticate("alice", PASSWORD).ok


def test_unknown_names_lock_like_real_accounts(app: Any, ctx: None, make_user: Any) -> None:
    make_user("alice")
    threshold = app.config["LOCKOUT_THRESHOLD"]
    real = [authenticate("alice", "Wrong-guess-1", ORIGIN).reason for _ in range(threshold + 1)]
    ghost = [authenticate("ghost", "Wrong-guess-1", ORIGIN).reason for _ in range(threshold + 1)]
    assert real == ghost == ["invalid"] * (threshold - 1) + ["locked", "locked"]
    # During the lock even the right password is not checked.
    assert authenticate("alice", PASSWORD).reason == "locked"
    lifecycle.unlock(find_by_login("alice"), actor="cli")
    assert authenticate("alice", PASSWORD).ok


def test_lock_grows_with_each_lock(app: Any, ctx: None, make_user: Any) -> None:
    make_user("alice")
    alice_id = find_by_login("alice").id
    first = [lockout.register_failure(alice_id) for _ in range(5)][-1]
    lockout.clear_failures(alice_id)
    second = [lockout.register_failure(alice_id) for _ in range(5)][-1]
    assert first == app.config["LOCKOUT_SECONDS"] and second == 2 * first


def test_sign_in_works_when_redis_is_down(app: Any, make_user: Any) -> None:
    from sso.extensions import RedisStore

    make_user("alice")
    with app.app_context():
        store = app.extensions["sso_redis"]
        app.extensions["sso_redis"] = RedisStore("redis://127.0.0.1:1/0", store.prefix)
        try:
            assert authenticate("alice", "Wrong-guess-1", ORIGIN).reason == "invalid"
            assert authenticate("alice", PASSWORD, ORIGIN).ok
            assert not lockout.captcha_required("198.51.100.7", 1)
        finally:
            app.extensions["sso_redis"] = store
            db.session.rollback()
