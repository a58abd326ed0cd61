"""The flow step "mfa" decided from recorded facts: who needs a second factor, and when."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pyotp
import pytest

from sso import flow
from sso.audit import Origin
from sso.dbtypes import utcnow
from sso.extensions import db
from sso.mfa import policy, service
from sso.sessions import service as sessions
from sso.sessions.models import Proof
from sso.users.service import find_by_login

step = policy.second_factor_step


def _request(**overrides: Any) -> flow.Request:
    values: dict[str, Any] = {
        "flow_id": "f", "started_at": utcnow(), "client_id": "erp", "client_name": "ERP",
        "scopes": ("openid",), "policy": flow.AppPolicy(),
    }
    values.update(overrides)
    return flow.Request(**values)


def _session(methods: list[str], at: Any) -> Any:
    """A session whose every proof was given at ``at``."""
    user = find_by_login("alice")
    session, _secret = sessions.sign_in(user, [Proof(m, at) for m in methods], lifetime=3600,
                                        origin=Origin(), now=at)
    db.session.flush()
    return session


def test_the_step_stands_between_identify_and_consent(ctx: None) -> None:
    names = flow.step_names()
    assert names.index("identify") < names.index("mfa") < names.index("consent")


def test_nothing_required_passes(ctx: None, alice: Any) -> None:
    assert step(_request(), _session(["pwd"], utcnow()), utcnow()) is None
    assert step(_request(), None, utcnow()) is None


@pytest.mark.parametrize("overrides", [
    {"policy": flow.AppPolicy(mfa_required=True)},
    {"acr_values": ("urn:sso:loa:2",)},
])
def test_not_enrolled_is_sent_to_enrolment(ctx: None, alice: Any,
                                           overrides: dict[str, Any]) -> None:
    interaction = step(_request(**overrides), _session(["pwd"], utcnow()), utcnow())
    assert interaction is not None and interaction.endpoint == "mfa.enrol"
    assert interaction.error == "interaction_required"


def test_unknown_acr_values_require_nothing(ctx: None, alice: Any) -> None:
    request = _request(acr_values=("urn:example:gold", "1"))
    assert step(request, _session(["pwd"], utcnow()), utcnow()) is None


def test_a_second_factor_carried_into_a_session_counts_from_when_it_was_proved(
        ctx: None, alice: Any) -> None:
    """A desktop signed in by QR from a phone that did MFA: the phone's proof came along,
    with the time it was given."""
    opened = utcnow() - timedelta(minutes=5)
    session = _session(["qr", "otp"], opened)
    user = find_by_login("alice")
    enrolment = service.begin_enrolment(user)
    service.confirm_enrolment(user, enrolment.id, pyotp.TOTP(enrolment.seed).now(),
                              origin=None, now=utcnow())
    required = {"policy": flow.AppPolicy(mfa_required=True)}
    assert step(_request(**required), session, utcnow()) is None
    assert step(_request(max_age=600, **required), session, utcnow()) is None
    asked = step(_request(max_age=60, **required), session, utcnow())
    assert asked is not None and asked.endpoint == "mfa.verify"
    asked = step(_request(prompts=frozenset({"login"}), **required), session, utcnow())
    assert asked is not None and asked.args == {}


def test_device_proof_only_stands_in_when_remembering_is_allowed(ctx: None, alice: Any,
                                                                 app: Any) -> None:
    user = find_by_login("alice")
    enrolment = service.begin_enrolment(user)
    service.confirm_enrolment(user, enrolment.id, pyotp.TOTP(enrolment.seed).now(),
                              origin=None, now=utcnow())
    session = _session(["pwd"], utcnow() - timedelta(minutes=1))
    session.add_proofs([Proof("device", utcnow() - timedelta(seconds=30))])
    started = utcnow()
    assert step(_request(started_at=started), session, utcnow()) is None
    strict = step(_request(started_at=started, policy=flow.AppPolicy(remember_device=False)),
                  session, utcnow())
    assert strict is not None and strict.args == {}
    asked = step(_request(started_at=started, acr_values=("urn:sso:loa:2",)), session,
                        utcnow())
    assert asked is not None and asked.endpoint == "mfa.verify"
    app.config["MFA_REMEMBER_DAYS"] = 0
    try:
        assert step(_request(started_at=started), session, utcnow()) is not None
    finally:
        app.config["MFA_REMEMBER_DAYS"] = 30


def test_admins_can_be_exempted(ctx: None, make_user: Any, app: Any) -> None:
    make_user("root", is_admin=True)
    root = find_by_login("root")
    assert policy.user_required(root)
    app.config["MFA_REQUIRED_FOR_ADMINS"] = False
    try:
        assert not policy.user_required(root)
    finally:
        app.config["MFA_REQUIRED_FOR_ADMINS"] = True
