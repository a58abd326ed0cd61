"""The console's services without a browser: secret rotation with its overlap, a disabled
app, the importer (XLSX, re-checking at commit), keyset paging of users and the audit log,
and ``sso audit list|export|purge``."""

from __future__ import annotations

import base64
import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from sso.cli import cli


def _token(http: Any, client_id: str, secret: str) -> int:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    answer = http.post("/token", data={"grant_type": "client_credentials"},
                       headers={"Authorization": f"Basic {basic}"})
    return int(answer.status_code)


@pytest.fixture
def machine(make_client: Any) -> Any:
    return make_client("Batch", [], grant_types=["client_credentials"], scope="reports",
                       client_id="batch-app")


def _remit(app: Flask, username: str) -> Any:
    from sso.admin import remit
    from sso.users.service import find_by_login

    return remit.of(find_by_login(username))


def test_rotation_keeps_the_old_secret_for_the_overlap_only(
        app: Flask, client: Any, admins: Any, machine: Any) -> None:
    from sso.admin import operations
    from sso.extensions import db
    from sso.oidc.models import Client

    assert _token(client, "batch-app", machine.secret) == 200
    with app.app_context():
        new = operations.rotate_secret(_remit(app, "root"), "batch-app", 2)
    assert _token(client, "batch-app", new) == 200
    assert _token(client, "batch-app", machine.secret) == 200  # inside the overlap
    with app.app_context():
        row = db.session.get(Client, "batch-app")
        row.previous_secret_expires_at -= timedelta(hours=3)
        db.session.commit()
    assert _token(client, "batch-app", machine.secret) == 401  # overlap over
    assert _token(client, "batch-app", new) == 200
    with app.app_context():
        newest = operations.rotate_secret(_remit(app, "root"), "batch-app", 0)
    assert _token(client, "batch-app", new) == 401  # no overlap asked for
    assert _token(client, "batch-app", newest) == 200


def test_disabled_app_gets_no_tokens_until_enabled(app: Flask, client: Any, admins: Any,
                                                   machine: Any) -> None:
    from sso.admin import operations

    with app.app_context():
        operations.set_client_enabled(_remit(app, "root"), "batch-app", False)
    assert _token(client, "batch-app", machine.secret) == 401
    with app.app_context():
        operations.set_client_enabled(_remit(app, "root"), "batch-app", True)
    assert _token(client, "batch-app", machine.secret) == 200


def test_every_admin_action_is_audited_with_admin_target_and_change(
        app: Flask, admins: Any) -> None:
    from sso.admin import operations
    from sso.audit import AuditEvent
    from sso.extensions import db

    with app.app_context():
        operations.edit_user(_remit(app, "root"), admins["ids"]["a_user"], name="Renamed",
                             email=None, phone=None)
        row = db.session.scalars(select(AuditEvent).where(
            AuditEvent.event == "admin.user.edit")).one()
        assert row.actor == "admin:root" and row.user_id == admins["ids"]["a_user"]
        assert row.details["change"] == {"name": {"from": "A_User", "to": "Renamed"}}


def _xlsx(rows: list[list[Any]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_xlsx_dry_run_then_import_of_the_valid_rows(app: Flask, admins: Any) -> None:
    from sso.admin import importer
    from sso.extensions import db
    from sso.outbox import OutboxMessage
    from sso.users.models import User

    data = _xlsx([["Name", "Username", "Email", "Phone"],
                  ["Grace", "grace", "grace@example.com", None],
                  ["Heidi", "heidi", None, 8613800138000],
                  ["Bad", "a_user", "x@example.com", None]])
    with app.app_context():
        result = importer.dry_run("people.xlsx", data, admins["ids"]["root"])
        assert [r.username for r in result.valid] == ["grace", "heidi"]
        assert result.invalid[0].errors == [
            "a user with that username or email already exists"]
        assert db.session.scalar(select(User).where(User.username == "grace")) is None
        # Someone else cannot queue this admin's import.
        with pytest.raises(importer.AdminError):
            importer.enqueue(result.import_id, _remit(app, "auditor"), locale="en")
        job = importer.enqueue(result.import_id, _remit(app, "root"), locale="en")
        db.session.commit()
        assert (job.total, job.skipped, job.status) == (2, 1, "queued")
        assert importer.work() is True
        job = importer.job_of(job.id, admins["ids"]["root"])
        assert (job.status, job.imported, job.failed, job.done) == ("done", 2, 0, 2)
        statuses = dict(db.session.execute(select(User.username, User.status).where(
            User.username.in_(["grace", "heidi"]))).all())
        assert statuses == {"grace": "invited", "heidi": "invited"}
        assert db.session.query(OutboxMessage).count() >= 2
        # Once queued, the dry run is gone.
        assert importer.load(result.import_id, admins["ids"]["root"]) is None


def test_users_keyset_pages_cover_everyone_once(app: Flask, admins: Any,
                                                 make_user: Any) -> None:
    from sso.admin import users_query

    for number in range(7):
        make_user(f"page{number}")
    with app.app_context():
        seen, after = [], None
        while True:
            rows, after = users_query.page(_remit(app, "root"), users_query.UserFilter(), after,
                                           size=3)
            seen += [u.username for u in rows]
            if after is None:
                break
        assert seen == sorted(seen) and len(seen) == len(set(seen)) == 13
        rows, _after = users_query.page(_remit(app, "root"),
                                        users_query.UserFilter.parse("PAGE", ""))
        assert [u.username for u in rows] == [f"page{n}" for n in range(7)]
        # LIKE's wildcards are matched as text.
        assert users_query.page(_remit(app, "root"), users_query.UserFilter.parse("%", ""))[
            0] == []


def _events(app: Flask, count: int) -> None:
    from sso.audit import record
    from sso.extensions import db

    with app.app_context():
        for number in range(count):
            record("test.event", "failure" if number % 2 else "success",
                   client_id="app-a" if number % 3 == 0 else "app-b", actor="cli")
        db.session.commit()


def test_audit_keyset_paging_and_app_admin_remit(app: Flask, admins: Any) -> None:
    from sso.admin import audit_query

    _events(app, 30)
    with app.app_context():
        where = audit_query.AuditFilter.parse({"event": "test.event"})
        ids, before = [], None
        while True:
            rows, before = audit_query.page(where, _remit(app, "root"), before, size=7)
            ids += [e.id for e in rows]
            if before is None:
                break
        assert len(ids) == 30 and ids == sorted(ids, reverse=True)
        seen = audit_query.page(where, _remit(app, "appadmin"), None, 100)[0]
        assert len(seen) == 10 and {e.client_id for e in seen} == {"app-a"}
        failures = audit_query.AuditFilter.parse({"event": "test.event", "result": "failure"})
        assert len(audit_query.page(failures, None, None, 100)[0]) == 15


def test_audit_commands_list_export_and_purge(app: Flask, admins: Any) -> None:
    from sso.audit import AuditEvent
    from sso.dbtypes import utcnow
    from sso.extensions import db

    _events(app, 4)
    with app.app_context():
        old = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "test.event")
                                 .order_by(AuditEvent.id).limit(1)).one()
        old.at = utcnow() - timedelta(days=200)
        db.session.commit()
    runner = app.test_cli_runner()
    listed = runner.invoke(cli, ["audit", "list", "--event", "test.event", "--result",
                                 "failure"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.count("test.event") == 2
    exported = runner.invoke(cli, ["audit", "export", "--event", "test.event"])
    rows = list(csv.DictReader(io.StringIO(exported.output)))
    assert len(rows) == 4 and rows[0]["actor"] == "cli"
    bad = runner.invoke(cli, ["audit", "list", "--since", "last tuesday"])
    assert bad.exit_code == 1 and "since: not a date or time" in bad.output
    purged = runner.invoke(cli, ["audit", "purge"])
    assert purged.exit_code == 0 and "1 event(s) older than 180 day(s) deleted" in purged.output
    after = runner.invoke(cli, ["audit", "export", "--event", "test.event"])
    assert len(list(csv.DictReader(io.StringIO(after.output)))) == 3
    assert "audit.purge" in runner.invoke(cli, ["audit", "list", "--event",
                                                "audit.purge"]).output


def test_admin_remits_from_the_command_line(app: Flask, admins: Any, as_admin: Any) -> None:
    runner = app.test_cli_runner()
    granted = runner.invoke(cli, ["admins", "grant", "plain", "--app-admin", "app-b"])
    assert granted.exit_code == 0, granted.output
    assert as_admin("plain").get("/admin/apps/app-b").status_code == 200
    listed = runner.invoke(cli, ["admins", "list"]).output
    assert "root" in listed and "plain" in listed and "app_admin app-b" in listed
    assert runner.invoke(cli, ["admins", "revoke", "plain", "--app-admin",
                               "app-b"]).exit_code == 0
    assert as_admin("plain").get("/admin/").status_code == 403
    bad = runner.invoke(cli, ["admins", "grant", "plain"])
    assert bad.exit_code == 1 and "either --app-admin CLIENT_ID or --auditor" in bad.output
    assert runner.invoke(cli, ["admins", "grant", "plain", "--app-admin",
                               "nope"]).exit_code == 1
