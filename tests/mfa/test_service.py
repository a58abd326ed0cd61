"""TOTP enrolment, verification, recovery codes, devices and key rotation, on real stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
from sqlalchemy import select

from sso.audit import AuditEvent
from sso.extensions import db
from sso.mfa import crypto, service
from sso.mfa.models import RecoveryCode, TotpAuthenticator
from sso.users.service import find_by_login

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def _user() -> Any:
    return find_by_login("alice")


def _enrolled(now: datetime = NOW) -> tuple[Any, str, list[str]]:
    user = _user()
    enrolment = service.begin_enrolment(user)
    codes = service.confirm_enrolment(user, enrolment.id, pyotp.TOTP(enrolment.seed).at(now),
                                      origin=None, now=now)
    db.session.commit()
    return user, enrolment.seed, codes


def _events(name: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.event == name)
                                   .order_by(AuditEvent.id)))


def test_provisioning_uri_names_issuer_and_account(ctx: None, alice: Any) -> None:
    enrolment = service.begin_enrolment(_user())
    parts = urlsplit(enrolment.uri)
    query = parse_qs(parts.query)
    assert parts.scheme == "otpauth" and parts.netloc == "totp"
    assert unquote(parts.path) == "/Company SSO:alice@example.com"
    assert query["issuer"] == ["Company SSO"]
    assert query["secret"] == [enrolment.seed]
    # SHA-1, 6 digits, 30 s are the defaults authenticator apps assume.
    assert pyotp.parse_uri(enrolment.uri).digits == 6
    assert pyotp.parse_uri(enrolment.uri).interval == 30
    assert enrolment.qr_svg().startswith("<svg ")


def test_nothing_is_stored_before_confirmation(ctx: None, alice: Any) -> None:
    service.begin_enrolment(_user())
    assert db.session.scalar(select(TotpAuthenticator)) is None
    assert not service.is_enrolled(_user().id)


def test_confirmation_stores_encrypted_seed_and_ten_hashed_codes(ctx: None, alice: Any) -> None:
    user, seed, codes = _enrolled()
    record = db.session.get(TotpAuthenticator, user.id)
    assert seed not in record.secret_encrypted
    assert crypto.decrypt(record.secret_encrypted) == seed
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = [row.code_hash for row in db.session.scalars(select(RecoveryCode))]
    assert len(stored) == 10
    assert not set(c.replace("-", "") for c in codes) & set(stored)
    assert [e.outcome for e in _events("mfa.enrol")] == ["success"]


def test_wrong_confirmation_code_enrols_nothing(ctx: None, alice: Any) -> None:
    user = _user()
    enrolment = service.begin_enrolment(user)
    wrong = pyotp.TOTP(enrolment.seed).at(NOW + timedelta(minutes=5))
    with pytest.raises(service.CodeError) as raised:
        service.confirm_enrolment(user, enrolment.id, wrong, origin=None, now=NOW)
    assert raised.value.reason == "wrong"
    db.session.commit()
    assert not service.is_enrolled(user.id)
    assert db.session.scalar(select(RecoveryCode)) is None
    # The same enrolment can still be confirmed with the right code.
    service.confirm_enrolment(user, enrolment.id, pyotp.TOTP(enrolment.seed).at(NOW),
                              origin=None, now=NOW)
    assert service.is_enrolled(user.id)


def test_racing_enrolments_first_confirmed_wins(ctx: None, alice: Any) -> None:
    user = _user()
    first = service.begin_enrolment(user)
    second = service.begin_enrolment(user)
    assert first.seed != second.seed
    service.confirm_enrolment(user, second.id, pyotp.TOTP(second.seed).at(NOW),
                              origin=None, now=NOW)
    db.session.commit()
    with pytest.raises(service.EnrolmentError) as raised:
        service.confirm_enrolment(user, first.id, pyotp.TOTP(first.seed).at(NOW),
                                  origin=None, now=NOW)
    assert raised.value.reason == "already"
    record = db.session.get(TotpAuthenticator, user.id)
    assert crypto.decrypt(record.secret_encrypted) == second.seed
    assert len(list(db.session.scalars(select(RecoveryCode)))) == 10


def test_database_refuses_a_second_authenticator(ctx: None, alice: Any) -> None:
    """The last line against a race that slips past the check: one row per user."""
    from sqlalchemy.exc import IntegrityError

    user, _seed, _codes = _enrolled()
    db.session.add(TotpAuthenticator(user_id=user.id, secret_encrypted="x", confirmed_at=NOW,
                                     last_step=0))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_expired_enrolment(ctx: None, alice: Any) -> None:
    with pytest.raises(service.EnrolmentError) as raised:
        service.confirm_enrolment(_user(), "no-such-enrolment", "123456", origin=None, now=NOW)
    assert raised.value.reason == "expired"


@pytest.mark.parametrize("offset", [-30, 0, 30])
def test_code_accepted_one_step_either_side(ctx: None, alice: Any, offset: int) -> None:
    user, seed, _codes = _enrolled(NOW - timedelta(minutes=10))
    code = pyotp.TOTP(seed).at(NOW + timedelta(seconds=offset))
    assert service.verify(user, code, origin=None, now=NOW) == "otp"


@pytest.mark.parametrize(("entry", "reason"), [
    ("", "malformed"),
    ("12345", "malformed"),
    ("1234567", "malformed"),
    ("abcdef", "malformed"),
    ("１２３４５６", "malformed"),
    ("' OR 1=1 --", "malformed"),
    ("x" * 5000, "malformed"),
])
def test_malformed_codes_are_refused_without_counting(ctx: None, alice: Any, entry: str,
                                                      reason: str) -> None:
    user, _seed, _codes = _enrolled(NOW - timedelta(minutes=10))
    with pytest.raises(service.CodeError) as raised:
        service.verify(user, entry, origin=None, now=NOW)
    assert raised.value.reason == reason
    assert _events("mfa.verify") == []


def test_expired_code_is_wrong_and_counts_toward_lockout(ctx: None, alice: Any) -> None:
    from sso.accounts import lockout

    user, seed, _codes = _enrolled(NOW - timedelta(minutes=10))
    expired = pyotp.TOTP(seed).at(NOW - timedelta(seconds=90))
    with pytest.raises(service.CodeError) as raised:
        service.verify(user, expired, origin=None, now=NOW)
    assert raised.value.reason == "wrong"
    for _ in range(4):
        with pytest.raises(service.CodeError):
            service.verify(user, expired, origin=None, now=NOW)
    assert lockout.locked_for(user.id, lockout.SECOND) > 0
    # Locked: even the right code is refused until the lock ends.
    with pytest.raises(service.CodeError) as raised:
        service.verify(user, pyotp.TOTP(seed).at(NOW), origin=None, now=NOW)
    assert raised.value.reason == "locked"
    db.session.commit()
    assert any(e.details.get("method") == "otp" for e in _events("account.locked"))


def test_replayed_code_is_refused(ctx: None, alice: Any) -> None:
    user, seed, _codes = _enrolled(NOW - timedelta(minutes=10))
    code = pyotp.TOTP(seed).at(NOW)
    service.verify(user, code, origin=None, now=NOW)
    db.session.commit()
    with pytest.raises(service.CodeError) as raised:
        service.verify(user, code, origin=None, now=NOW + timedelta(seconds=20))
    assert raised.value.reason == "replayed"
    # An older step of the same window is refused too once a newer one was used.
    with pytest.raises(service.CodeError) as raised:
        service.verify(user, pyotp.TOTP(seed).at(NOW - timedelta(seconds=30)), origin=None,
                       now=NOW)
    assert raised.value.reason == "replayed"


def test_replay_refused_by_redis_even_when_the_database_lags(ctx: None, alice: Any) -> None:
    """Two nodes racing with the same code: the Redis SET NX lets only one through."""
    user, seed, _codes = _enrolled(NOW - timedelta(minutes=10))
    code = pyotp.TOTP(seed).at(NOW)
    service.verify(user, code, origin=None, now=NOW)
    db.session.rollback()  # the winner's last_step never reached the database
    with pytest.raises(service.CodeError) as raised:
        service.verify(user, code, origin=None, now=NOW)
    assert raised.value.reason == "replayed"


def test_recovery_code_works_once(ctx: None, alice: Any) -> None:
    user, _seed, codes = _enrolled()
    assert service.verify(user, codes[0].upper(), origin=None, now=NOW) == "recovery"
    db.session.commit()
    assert service.remaining_recovery_codes(user.id) == 9
    with pytest.raises(service.CodeError) as raised:
        service.verify(user, codes[0], origin=None, now=NOW)
    assert raised.value.reason == "used"
    with pytest.raises(service.CodeError) as raised:
        service.verify(user, "aaaa-bbbb-cccc-dddd", origin=None, now=NOW)
    assert raised.value.reason == "wrong"


def test_regenerating_voids_the_old_codes(ctx: None, alice: Any) -> None:
    user, _seed, old = _enrolled()
    new = service.regenerate_recovery_codes(user, origin=None, now=NOW)
    db.session.commit()
    assert not set(old) & set(new)
    with pytest.raises(service.CodeError):
        service.verify(user, old[1], origin=None, now=NOW)
    assert service.verify(user, new[1], origin=None, now=NOW) == "recovery"


def test_remove_deletes_everything(ctx: None, alice: Any) -> None:
    user, _seed, _codes = _enrolled()
    _device, _cookie = service.remember_device(user, origin=_origin(), now=NOW, days=30)
    assert service.remove(user, origin=None) is True
    db.session.commit()
    assert not service.is_enrolled(user.id)
    assert service.remaining_recovery_codes(user.id) == 0
    assert service.devices(user.id, NOW) == []


def _origin() -> Any:
    from sso.audit import Origin

    return Origin(ip="192.0.2.1", user_agent="Test browser")


def test_remembered_device_cookie_is_bound_to_user_and_record(ctx: None, alice: Any,
                                                              make_user: Any) -> None:
    make_user("bob")
    user = _user()
    bob = find_by_login("bob")
    device, cookie = service.remember_device(user, origin=_origin(), now=NOW, days=30)
    db.session.commit()
    assert service.device_from_cookie(user, cookie, NOW, 30) is device
    assert service.device_from_cookie(bob, cookie, NOW, 30) is None
    assert service.device_from_cookie(user, cookie + "x", NOW, 30) is None
    assert service.device_from_cookie(user, cookie, NOW + timedelta(days=31), 30) is None
    assert service.revoke_device(user, device.id, origin=None, now=NOW) is True
    assert service.device_from_cookie(user, cookie, NOW, 30) is None
    assert service.revoke_device(bob, device.id, origin=None, now=NOW) is False


def test_key_rotation_re_encrypts_with_the_new_key(app: Any, ctx: None, alice: Any) -> None:
    user, seed, _codes = _enrolled()
    old_config = dict(app.config)
    try:
        app.config["MFA_ENCRYPTION_KEYS"] = "a-brand-new-key-0123456789," + app.config[
            "SECRET_KEY"]
        assert service.rotate_encryption() == 1
        db.session.commit()
        app.config["MFA_ENCRYPTION_KEYS"] = "a-brand-new-key-0123456789"
        record = db.session.get(TotpAuthenticator, user.id)
        assert crypto.decrypt(record.secret_encrypted) == seed
        app.config["MFA_ENCRYPTION_KEYS"] = None
        with pytest.raises(crypto.UndecryptableSecret):
            crypto.decrypt(record.secret_encrypted)
    finally:
        app.config["MFA_ENCRYPTION_KEYS"] = old_config.get("MFA_ENCRYPTION_KEYS")


@pytest.mark.truncate  # threads: each commits on its own connection
def test_concurrent_confirmations_leave_one_authenticator(app: Any, alice: Any) -> None:
    """Two tabs confirm at the same moment: the database lets one in, the other is told."""
    import threading
    import time

    outcome: dict[str, Any] = {}

    with app.app_context():
        user = _user()
        first, second = service.begin_enrolment(user), service.begin_enrolment(user)
        service.confirm_enrolment(user, first.id, pyotp.TOTP(first.seed).at(NOW), origin=None,
                                  now=NOW)  # flushed, not yet committed

        def other_tab() -> None:
            with app.app_context():
                try:
                    service.confirm_enrolment(_user(), second.id,
                                              pyotp.TOTP(second.seed).at(NOW), origin=None,
                                              now=NOW)
                    db.session.commit()
                    outcome["second"] = "enrolled"
                except service.EnrolmentError as error:
                    outcome["second"] = error.reason
                finally:
                    db.session.remove()

        thread = threading.Thread(target=other_tab)
        thread.start()
        time.sleep(0.5)  # let the other tab reach its insert (either order ends the same)
        db.session.commit()
        thread.join(timeout=30)
        assert outcome["second"] == "already"
        record = db.session.get(TotpAuthenticator, user.id)
        assert crypto.decrypt(record.secret_encrypted) == first.seed
        assert service.remaining_recovery_codes(user.id) == 10
        db.session.remove()


@pytest.mark.parametrize(("keys", "ok"), [
    ("short", False),
    (" , ", False),
    ("k" * 32 + ",", True),
    (["k" * 40, "m" * 40], True),
])
def test_encryption_keys_are_checked_at_start(app_config: dict[str, Any], keys: Any,
                                              ok: bool) -> None:
    from sso import create_app
    from sso.config import ConfigError

    if ok:
        assert create_app({**app_config, "MFA_ENCRYPTION_KEYS": keys})
    else:
        with pytest.raises(ConfigError):
            create_app({**app_config, "MFA_ENCRYPTION_KEYS": keys})
