"""The whole QR sign-in through the test client: desktop code, phone approval, app code."""

from __future__ import annotations

from typing import Any

from tests.oidc.test_id_token import _verify
from tests.qrlogin.conftest import Desktop, Phone


def _subject(app: Any, username: str) -> str:
    from sso.accounts.models import User
    from sso.extensions import db

    with app.app_context():
        return db.session.scalar(db.select(User.subject).where(User.username == username))


def test_phone_approves_and_desktop_lands_in_the_app(desktop: Desktop, phone: Phone,
                                                     app: Any) -> None:
    code = desktop.start()
    page = phone.open(code["id"])
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "ERP" in html and "Chrome on Windows" in html and "127.0.0.1" in html
    assert phone.approve(code["id"]).status_code == 200
    back = desktop.follow_to_app(desktop.complete())
    assert back["code"]
    tokens = desktop.flow.token(back["code"]).get_json()
    claims = _verify(desktop.http, tokens["id_token"], "RS256")
    assert claims["sub"] == _subject(app, "alice")
    assert claims["amr"] == ["qr"]
