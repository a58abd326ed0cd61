"""Lifetimes, limits and bounded reach (RFC 10027): short codes, a second use is an alarm,
approvals per user are limited, and only fresh phone factors reach the desktop's session."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from sso.config import ConfigError, resolve
from tests.conftest import LiveProvider, free_port, serve_in_thread
from tests.qrlogin.conftest import Desktop, Phone


@pytest.mark.parametrize("ttl, ok", [(59, False), (60, True), (120, True), (121, False)])
def test_a_code_lives_60_to_120_seconds(tmp_path: Any, ttl: int, ok: bool) -> None:
    settings = {"TESTING": True, "QR_CODE_TTL": ttl}
    if ok:
        assert resolve(tmp_path, settings)["QR_TTL"] == ttl
    else:
        with pytest.raises(ConfigError, match="SSO_QR_CODE_TTL"):
            resolve(tmp_path, settings)


def _audit(app: Any, event: str) -> list[str]:
    from sso.audit import AuditEvent
    from sso.extensions import db

    with app.app_context():
        rows = db.session.scalars(db.select(AuditEvent).where(AuditEvent.event == event)).all()
        return [row.outcome for row in rows]


def test_a_second_use_of_a_code_is_an_alarm(desktop: Desktop, phone: Phone, app: Any) -> None:
    code = desktop.start()
    phone.approve(code["id"])
    assert desktop.complete().status_code == 302
    assert desktop.complete(code["id"]).status_code in (404, 409)
    assert "alarm" in _audit(app, "qr.consume")
    assert phone.open(code["id"]).status_code == 409  # scanning a used code again
    assert _audit(app, "qr.scan").count("alarm") == 1


def test_approvals_per_user_are_limited(desktop: Desktop, phone: Phone, app: Any) -> None:
    app.config["RATE_LIMIT_QR_APPROVE_USER"] = "2/300"
    try:
        for _ in range(2):
            code = desktop.new_code()
            assert phone.approve(code["id"]).status_code == 200
        code = desktop.new_code()
        assert phone.approve(code["id"]).status_code == 429
    finally:
        app.config["RATE_LIMIT_QR_APPROVE_USER"] = "10/300"


@pytest.mark.parametrize("age, amr", [(60, ["qr", "otp", "mfa"]), (3600, ["qr"])])
def test_only_fresh_phone_factors_reach_the_desktop(desktop: Desktop, phone: Phone, app: Any,
                                                    age: int, amr: list[str]) -> None:
    """Bounded reach: the phone's second factor counts for the desktop only if proved within
    SSO_QR_FACTOR_FRESHNESS (600 s). A second app that needs a second factor then finds none
    in the QR-made session and asks for it again."""
    from sso.audit import AuditEvent
    from sso.dbtypes import utcnow
    from sso.extensions import db
    from sso.sessions.models import Proof, SSOSession

    with app.app_context():
        for row in db.session.scalars(db.select(SSOSession)).all():
            row.add_proofs([Proof("otp", utcnow() - timedelta(seconds=age))])
        db.session.commit()
    code = desktop.start()
    assert phone.approve(code["id"]).status_code == 200
    assert desktop.complete().status_code == 302
    with app.app_context():
        signin = db.session.scalars(db.select(AuditEvent).where(
            AuditEvent.event == "signin", AuditEvent.details["door"].as_string() == "qr-desktop"
        )).all()[-1]
        assert signin.details["amr"] == amr


@pytest.fixture
def short_lived(app: Any, app_config: dict[str, Any]) -> Iterator[LiveProvider]:
    """A provider whose codes live 8 s (QR_TTL overrides the 60-120 s bounds for tests)."""
    from sso import create_app

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    live = create_app({**app_config, "ISSUER": url, "QR_TTL": 8})
    server = serve_in_thread(live, port)
    yield LiveProvider(url=url, app=live)
    server.shutdown()


@pytest.mark.browser
def test_the_desktop_counts_down_and_swaps_in_a_fresh_code(browser_page: Any,
                                                          short_lived: LiveProvider) -> None:
    page = browser_page
    page.goto(f"{short_lived.url}/qr/login")
    page.locator("#qr-status", has_text="Scan this code").wait_for()
    first = page.locator("#qr-image").get_attribute("src")
    assert "New code in" in page.locator("#qr-countdown").inner_text()
    url = page.url
    for _ in range(200):
        if page.locator("#qr-image").get_attribute("src") != first:
            break
        page.wait_for_timeout(100)
    assert page.locator("#qr-image").get_attribute("src") != first
    assert page.url == url  # no reload
    page.locator("#qr-status", has_text="Scan this code").wait_for()


def test_a_stale_phone_factor_is_verified_again_on_the_phone(desktop: Desktop, phone: Phone,
                                                             app: Any, erp: Any) -> None:
    """For an app that requires a second factor, a phone whose factor is older than
    SSO_QR_FACTOR_FRESHNESS is sent to verify it again before it may approve."""
    import pyotp

    from sso.dbtypes import utcnow
    from sso.extensions import db
    from sso.mfa import service as mfa
    from sso.oidc.models import Client
    from sso.sessions.models import Proof, SSOSession
    from sso.users.service import find_by_login

    with app.app_context():
        db.session.get(Client, erp.client_id).mfa_required = True
        user = find_by_login("alice")
        enrolment = mfa.begin_enrolment(user)
        past = utcnow() - timedelta(seconds=3600)
        mfa.confirm_enrolment(user, enrolment.id, pyotp.TOTP(enrolment.seed).at(past),
                              origin=None, now=past)
        for row in db.session.scalars(db.select(SSOSession)).all():
            row.add_proofs([Proof("otp", past)])
        db.session.commit()
    code = desktop.start()
    stale = phone.open(code["id"])
    assert stale.status_code == 302 and "/mfa/verify" in stale.headers["Location"]
    assert f"next=/qr/s/{code['id']}" in stale.headers["Location"]
    with app.app_context():
        for row in db.session.scalars(db.select(SSOSession)).all():
            row.add_proofs([Proof("otp", utcnow())])
        db.session.commit()
    assert phone.open(code["id"]).status_code == 200
