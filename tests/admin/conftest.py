"""Admins of each kind, signed in with a second factor, for the console's tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import csrf_of


def sign_in(app: Flask, http: FlaskClient, username: str, *, second_factor: bool = True,
            factor_age: int = 0) -> None:
    """Open a real SSO session for ``username`` (password, and a TOTP proof ``factor_age``
    seconds old) and give ``http`` its cookie, as the passage does after a sign-in."""
    from sso.audit import Origin
    from sso.dbtypes import utcnow
    from sso.extensions import db
    from sso.flow.passage import session_cookie_name
    from sso.sessions import service as sessions
    from sso.sessions.models import Proof
    from sso.users.service import find_by_login

    with app.app_context():
        now = utcnow()
        proofs = [Proof("pwd", now - timedelta(seconds=factor_age + 1))]
        if second_factor:
            proofs.append(Proof("otp", now - timedelta(seconds=factor_age)))
        _session, secret = sessions.sign_in(find_by_login(username), proofs, lifetime=3600,
                                            origin=Origin(ip="127.0.0.1"), now=now)
        db.session.commit()
        name = session_cookie_name()
    http.set_cookie(name, secret, domain="localhost")


@pytest.fixture
def admins(app: Flask, make_user: Any, make_client: Any) -> dict[str, Any]:
    """A super admin, an app admin of app A, an auditor, a plain user; apps A and B with a
    user each (``a_user`` has an account in A, ``b_user`` in B)."""
    from sso.admin import remit
    from sso.apps import service as apps
    from sso.extensions import db
    from sso.oidc.clients import get
    from sso.users.service import define_role, find_by_login

    make_user("root", is_admin=True)
    for name in ("appadmin", "auditor", "plain", "a_user", "b_user"):
        make_user(name)
    app_a = make_client("App A", ["https://a.example.com/cb"], client_id="app-a")
    app_b = make_client("App B", ["https://b.example.com/cb"], client_id="app-b")
    with app.app_context():
        remit.grant(find_by_login("appadmin"), "app_admin", "app-a", actor="test")
        remit.grant(find_by_login("auditor"), "auditor", None, actor="test")
        apps.provision(find_by_login("a_user"), get("app-a"), actor="test")
        define_role("app-a", "viewer")
        define_role("app-b", "viewer")
        apps.provision(find_by_login("b_user"), get("app-b"), actor="test")
        db.session.commit()
        ids = {n: find_by_login(n).id for n in ("root", "appadmin", "auditor", "plain",
                                                  "a_user", "b_user")}
    return {"ids": ids, "app_a": app_a, "app_b": app_b}


@pytest.fixture
def as_admin(app: Flask) -> Callable[[str], FlaskClient]:
    """A test client signed in (with a second factor) as the named user."""

    def make(username: str) -> FlaskClient:
        http = app.test_client()
        sign_in(app, http, username)
        return http

    return make


def csrf(http: FlaskClient) -> str:
    """The CSRF token of ``http``'s browser session, read off an admin page."""
    return csrf_of(http.get("/admin/users").get_data(as_text=True))
