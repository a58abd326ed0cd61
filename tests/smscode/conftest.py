"""An app with sign-in by SMS code switched on (``SSO_SMS_SIGN_IN=true``), on the same
database and Redis as the ``app`` fixture, and users with verified mobile numbers."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from sso import create_app
from tests.conftest import PASSWORD


@pytest.fixture(scope="session")
def sms_app(app: Flask, app_config: dict[str, Any]) -> Flask:
    return create_app({**app_config, "SMS_SIGN_IN": "true"})


@pytest.fixture
def make_phone_user(app: Flask) -> Any:
    """A user with a mobile number, verified unless told otherwise."""

    def make(username: str = "alice", phone: str = "+8613800000001", verified: bool = True,
             status: str | None = None, locale: str | None = None) -> Any:
        from sso.accounts.service import create_user
        from sso.extensions import db

        with app.app_context():
            user = create_user(username, password=PASSWORD, email=f"{username}@example.com",
                               phone=phone, name=username.title())
            user.phone_verified = verified
            user.locale = locale
            if status:
                user.status = status
            db.session.commit()
            return user.id

    return make
