"""Helpers for the two-step verification tests: enrol users through the real service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pyotp
import pytest
from flask import Flask


@dataclass
class Enrolled:
    user_id: int
    seed: str
    recovery_codes: list[str]

    def code(self, offset_steps: int = 0) -> str:
        """The code of the current time step (+ ``offset_steps``), as an app would show it."""
        from sso.dbtypes import utcnow

        moment = utcnow() + timedelta(seconds=30 * offset_steps)
        return pyotp.TOTP(self.seed).at(moment)


@pytest.fixture
def enrol(app: Flask) -> Any:
    """Enrol a user through the service, confirmed with a code from three steps ago, so the
    codes of the current window are still unused."""

    def run(username: str = "alice") -> Enrolled:
        from sso.dbtypes import utcnow
        from sso.extensions import db
        from sso.mfa import service
        from sso.users.service import find_by_login

        with app.app_context():
            user = find_by_login(username)
            enrolment = service.begin_enrolment(user)
            past = utcnow() - timedelta(seconds=90)
            codes = service.confirm_enrolment(
                user, enrolment.id, pyotp.TOTP(enrolment.seed).at(past), origin=None, now=past
            )
            db.session.commit()
            return Enrolled(user.id, enrolment.seed, codes)

    return run
