"""The activation service on the real database and Redis: policies, decisions, revocation."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import select

from sso import audit
from sso.apps import service
from sso.apps.models import AppAccount
from sso.apps.models import AppAccountStatus as Status
from sso.extensions import db
from sso.oidc.models import Client, RefreshToken
from sso.outbox import OutboxMessage
from sso.users.models import User


def _load(user: Any, client: Any) -> tuple[User, Client]:
    return db.session.get(User, user.id), db.session.get(Client, client.client_id)


def _events() -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "event")))


def _audited(name: str) -> int:
    return len(db.session.scalars(select(audit.AuditEvent).where(
        audit.AuditEvent.event == name)).all())


def test_auto_activates_once_and_records_when(ctx: None, alice: Any, make_app: Any) -> None:
    user, client = _load(alice, make_app("auto", "https://erp.example.com/events"))
    first = service.on_sign_in(user, client, interactive=True, origin=None)
    db.session.commit()
    assert first.outcome == service.PASS and len(first.events) == 1
    account = service.find(user.id, client.client_id)
    assert account.status == Status.ACTIVE and account.activated_at is not None
    again = service.on_sign_in(user, client, interactive=False, origin=None)
    assert again.outcome == service.PASS and again.events == []
    assert len(_events()) == 1 and _audited("app.activate") == 1


def test_no_events_endpoint_means_no_event(ctx: None, alice: Any, make_app: Any) -> None:
    user, client = _load(alice, make_app("auto"))
    decision = service.on_sign_in(user, client, interactive=True, origin=None)
    assert decision.events == [None] and _events() == []


def test_approval_files_one_request_and_waits(ctx: None, alice: Any, make_app: Any) -> None:
    user, client = _load(alice, make_app("approval"))
    silent = service.on_sign_in(user, client, interactive=False, origin=None)
    assert silent.outcome == service.WAIT and service.find(user.id, client.client_id) is None
    for _ in range(2):
        decision = service.on_sign_in(user, client, interactive=True, origin=None)
        assert decision.outcome == service.WAIT
    db.session.commit()
    account = service.find(user.id, client.client_id)
    assert account.status == Status.PENDING and account.requested_at is not None
    assert _audited("app.request") == 1


def test_approve_activates_mails_the_user_and_emits(ctx: None, alice: Any, make_app: Any) -> None:
    user, client = _load(alice, make_app("approval", "https://erp.example.com/events"))
    service.on_sign_in(user, client, interactive=True, origin=None)
    account, message = service.approve(user, client, actor="cli:test")
    db.session.commit()
    assert account.status == Status.ACTIVE and account.decided_by == "cli:test"
    assert message is not None and message.purpose == "app-activated"
    mail = db.session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "mail")).one()
    assert mail.recipient == "alice@example.com" and "ERP" in mail.subject
    assert service.on_sign_in(user, client, interactive=False, origin=None).outcome == "pass"
    with pytest.raises(service.AppsError):
        service.approve(user, client, actor="cli:test")


def test_chinese_users_get_chinese_mail(ctx: None, app: Any, make_user: Any,
                                        make_app: Any) -> None:
    bob = make_user("bob")
    user, client = _load(bob, make_app("approval"))
    user.locale = "zh-CN"
    service.deny(user, client, actor="cli:test")
    db.session.commit()
    mail = db.session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "mail")).one()
    assert "未获批准" in mail.subject and "管理员拒绝" in mail.body_text


def test_deny_and_revoke_stay_closed_whatever_the_policy(ctx: None, alice: Any,
                                                         make_app: Any) -> None:
    user, client = _load(alice, make_app("auto"))
    service.on_sign_in(user, client, interactive=True, origin=None)
    service.revoke(user, client, actor="cli:test")
    decision = service.on_sign_in(user, client, interactive=True, origin=None)
    assert (decision.outcome, decision.reason) == (service.REFUSE, "revoked")
    with pytest.raises(service.AppsError):
        service.revoke(user, client, actor="cli:test")
    service.approve(user, client, actor="cli:test")
    assert service.on_sign_in(user, client, interactive=True, origin=None).outcome == "pass"


def test_invite_needs_provisioning(ctx: None, alice: Any, make_app: Any) -> None:
    user, client = _load(alice, make_app("invite", "https://erp.example.com/events"))
    decision = service.on_sign_in(user, client, interactive=True, origin=None)
    assert (decision.outcome, decision.reason) == (service.REFUSE, "not_provisioned")
    assert service.find(user.id, client.client_id) is None and _events() == []
    service.provision(user, client, actor="cli:test")
    assert _events() == []
    decision = service.on_sign_in(user, client, interactive=False, origin=None)
    assert decision.outcome == service.PASS and len(_events()) == 1
    account = service.find(user.id, client.client_id)
    assert account.status == Status.ACTIVE and account.decided_by == "cli:test"


def test_revoke_revokes_the_apps_refresh_tokens_only(ctx: None, alice: Any,
                                                     make_app: Any) -> None:
    from datetime import timedelta

    from sso.dbtypes import utcnow

    user, erp = _load(alice, make_app("auto"))
    _, crm = _load(alice, make_app("auto", name="CRM"))
    now = utcnow()
    for client, family in ((erp, "family-erp"), (crm, "family-crm")):
        service.on_sign_in(user, client, interactive=True, origin=None)
        db.session.add(RefreshToken(
            token_hash=family.ljust(64, "0"), family_id=family, client_id=client.client_id,
            user_id=user.id, scope="openid", auth_time=now, amr=["pwd"], access_jti=family,
            access_expires_at=now + timedelta(minutes=5), expires_at=now + timedelta(days=1)))
    db.session.commit()
    service.revoke(user, erp, actor="cli:test")
    db.session.commit()
    revoked = {t.family_id: t.revoked_at is not None
               for t in db.session.scalars(select(RefreshToken))}
    assert revoked == {"family-erp": True, "family-crm": False}
    assert service.find(user.id, crm.client_id).status == Status.ACTIVE


@pytest.mark.parametrize(("activation", "endpoint"), [
    ("sometimes", None),
    (None, "http://erp.example.com/events"),
    (None, "ftp://erp.example.com/events"),
    (None, "https://user:pw@erp.example.com/events"),
    (None, "/events"),
])
def test_a_bad_policy_is_refused(ctx: None, activation: str | None,
                                 endpoint: str | None) -> None:
    policy = {"activation": activation} if activation else {"events_endpoint": endpoint}
    with pytest.raises(service.AppsError):
        service.checked_policy(policy)


@pytest.mark.truncate  # threads: each tab commits on its own connection
@pytest.mark.parametrize("activation", ["auto", "invite"])
def test_two_tabs_activating_at_once_make_one_account(app: Any, alice: Any, make_app: Any,
                                                      activation: str) -> None:
    erp = make_app(activation, "https://erp.example.com/events")
    if activation == "invite":
        with app.app_context():
            service.provision(*_load(alice, erp), actor="cli:test")
            db.session.commit()
            db.session.remove()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def tab() -> None:
        with app.app_context():
            user, client = _load(alice, erp)
            barrier.wait()
            try:
                outcomes.append(service.on_sign_in(user, client, interactive=True,
                                                   origin=None).outcome)
                db.session.commit()
            finally:
                db.session.remove()

    threads = [threading.Thread(target=tab) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == ["pass", "pass"]
    with app.app_context():
        assert len(db.session.scalars(select(AppAccount)).all()) == 1
        assert len(_events()) == 1
        db.session.remove()


def test_admins_hear_of_a_request_once(ctx: None, alice: Any, make_user: Any,
                                       make_app: Any) -> None:
    make_user("boss", is_admin=True)
    user, client = _load(alice, make_app("approval"))
    for _ in range(2):
        service.on_sign_in(user, client, interactive=True, origin=None)
    db.session.commit()
    mails = db.session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "mail")).all()
    assert [m.recipient for m in mails] == ["boss@example.com"]
    assert "alice asks to use ERP" in mails[0].subject
    assert f"sso apps approve {client.client_id} alice" in mails[0].body_text


def test_a_waiting_user_gets_in_once_the_app_opens_to_everyone(ctx: None, alice: Any,
                                                              make_app: Any) -> None:
    user, client = _load(alice, make_app("approval"))
    service.on_sign_in(user, client, interactive=True, origin=None)
    service.configure(client, activation="auto")
    decision = service.on_sign_in(user, client, interactive=True, origin=None)
    assert decision.outcome == service.PASS
    assert service.find(user.id, client.client_id).status == Status.ACTIVE
    service.revoke(user, client, actor="cli:test")
    assert service.on_sign_in(user, client, interactive=True, origin=None).outcome == "refuse"
    assert _audited("app.refuse") == 1 and _audited("app.revoke") == 1
