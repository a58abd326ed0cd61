"""The profile page: the name changes at once; a new email address only once the link sent
to it is confirmed (a GET only asks; the link works once); bad input gets a readable page."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

from tests.conftest import Flow, csrf_of


def _mail_link(app: Any) -> tuple[str, str]:
    from sso.extensions import db
    from sso.outbox import OutboxMessage

    with app.app_context():
        mail = db.session.scalars(db.select(OutboxMessage).where(
            OutboxMessage.purpose == "email-change")).one()
        return mail.recipient, re.search(r"/account/email/\S+", mail.body_text).group(0)


def test_name_and_email_change(app: Any, client: FlaskClient, erp: Any, alice: Any) -> None:
    from sso.extensions import db
    from sso.users.service import find_by_login

    Flow(client, erp).authorize()
    page = client.get("/account/profile").get_data(as_text=True)
    response = client.post("/account/profile", data={
        "csrf_token": csrf_of(page), "name": "Alice Liu", "email": "alice@new.example.com"})
    assert response.status_code == 302
    with app.app_context():
        user = find_by_login("alice")
        assert user.name == "Alice Liu" and user.email == "alice@example.com"
        db.session.remove()
    recipient, link = _mail_link(app)
    assert recipient == "alice@new.example.com"

    other = app.test_client()  # the mailbox may be read anywhere
    asked = other.get(link)
    assert asked.status_code == 200 and "alice@new.example.com" in asked.get_data(as_text=True)
    with app.app_context():
        assert find_by_login("alice").email == "alice@example.com"  # a GET changes nothing
        db.session.remove()
    done = other.post(link, data={"csrf_token": csrf_of(asked.get_data(as_text=True))})
    assert done.status_code == 200
    with app.app_context():
        user = find_by_login("alice")
        assert user.email == "alice@new.example.com" and user.email_verified
        db.session.remove()
    again = other.post(link, data={"csrf_token": csrf_of(asked.get_data(as_text=True))})
    assert again.status_code == 404


def test_bad_profile_input(app: Any, client: FlaskClient, erp: Any, alice: Any,
                           make_user: Any) -> None:
    make_user("bob")
    Flow(client, erp).authorize()
    page = client.get("/account/profile").get_data(as_text=True)
    for data in ({"name": "", "email": ""}, {"name": "A", "email": "not-an-address"},
                 {"name": "A", "email": "bob@example.com"}, {"name": "x" * 500}):
        response = client.post("/account/profile", data={"csrf_token": csrf_of(page), **data})
        assert response.status_code == 400
        assert 'id="form-errors"' in response.get_data(as_text=True)
    assert client.post("/account/profile", data={"name": "A"}).status_code == 400  # no CSRF
    assert client.get("/account/email/" + "x" * 40).status_code == 404
