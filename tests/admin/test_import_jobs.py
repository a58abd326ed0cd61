"""Bulk import as a background job: the worker writes batches under a lease, resumes after a
crash without writing a row twice, skips the rows refused meanwhile, and acts in the remit of
the admin who queued it; the console queues and shows the progress."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from tests.admin.conftest import csrf


def _csv(*rows: str) -> bytes:
    return ("username,email,phone,name\n" + "\n".join(rows) + "\n").encode()


def _queue(app: Flask, data: bytes, admin: str = "root") -> int:
    from sso.admin import importer, remit
    from sso.extensions import db
    from sso.users.service import find_by_login

    found = remit.of(find_by_login(admin))
    result = importer.dry_run("people.csv", data, found.user_id)
    job = importer.enqueue(result.import_id, found, locale="en")
    db.session.commit()
    return int(job.id)


def _people(count: int) -> bytes:
    return _csv(*(f"p{n:03d},p{n:03d}@example.net,,Person {n}" for n in range(count)))


class Crash(BaseException):
    """The worker process dies: nothing of the open transaction commits."""


def test_a_crashed_worker_leaves_no_half_batch_and_the_next_resumes(
        app: Flask, admins: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sso.admin import importer
    from sso.admin.models import ImportJob
    from sso.dbtypes import utcnow
    from sso.extensions import db
    from sso.outbox import OutboxMessage
    from sso.users.models import User

    monkeypatch.setattr(importer, "BATCH", 3)
    with app.app_context():
        job_id = _queue(app, _people(8))
        real_write = importer._write
        written: list[str] = []

        def dies_at_the_fifth(row: Any, locale: Any, actor: str) -> None:
            if len(written) == 4:
                raise Crash()
            real_write(row, locale, actor)
            written.append(row.username)

        monkeypatch.setattr(importer, "_write", dies_at_the_fifth)
        with pytest.raises(Crash):
            importer.work()
        db.session.rollback()  # the dead worker's connection goes, its open batch with it
        monkeypatch.setattr(importer, "_write", real_write)

        job = db.session.get(ImportJob, job_id)
        # The first batch committed with its progress; the second's row 4 did not.
        assert (job.done, job.imported, job.status) == (3, 3, "running")
        assert db.session.scalar(select(func.count()).select_from(User)
                                 .where(User.username.like("p0%"))) == 3
        # The claim still holds: no other worker takes the job before its lease lapses.
        assert importer.work() is False
        later = utcnow() + timedelta(seconds=importer.LEASE_SECONDS + 1)
        assert importer.work(later) is True
        db.session.expire_all()
        job = db.session.get(ImportJob, job_id)
        assert (job.status, job.done, job.imported, job.failed) == ("done", 8, 8, 0)
        names = db.session.scalars(select(User.username).where(User.username.like("p0%"))).all()
        assert sorted(names) == [f"p{n:03d}" for n in range(8)]
        invitations = db.session.scalar(select(func.count()).select_from(OutboxMessage)
                                        .where(OutboxMessage.recipient.like("p%@example.net")))
        assert invitations == 8
        assert job.rows == [] and job.claim_token is None and job.finished_at is not None


def test_a_worker_that_stops_after_some_batches_hands_on(app: Flask, admins: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from sso.admin import importer
    from sso.admin.models import ImportJob
    from sso.extensions import db

    monkeypatch.setattr(importer, "BATCH", 2)
    with app.app_context():
        job_id = _queue(app, _people(5))
        assert importer.work(max_batches=1) is True
        job = db.session.get(ImportJob, job_id)
        assert (job.done, job.status, job.claim_token) == (2, "running", None)
        assert importer.work() is True  # released, so taken at once
        db.session.expire_all()
        assert db.session.get(ImportJob, job_id).status == "done"
        assert importer.work() is False  # nothing left


def test_rows_taken_since_the_dry_run_are_refused_the_rest_written(
        app: Flask, admins: Any, make_user: Any) -> None:
    from sso.admin import importer
    from sso.admin.models import ImportJob
    from sso.audit import AuditEvent
    from sso.extensions import db

    with app.app_context():
        job_id = _queue(app, _csv("ivan,ivan@example.net,,Ivan", "judy,judy@example.net,,Judy",
                                  "bad,not-an-email,,Bad"))
    make_user("judy")  # meanwhile, by another admin
    with app.app_context():
        importer.work()
        job = db.session.get(ImportJob, job_id)
        assert (job.status, job.imported, job.failed, job.skipped) == ("done", 1, 1, 1)
        assert job.failures == [{"line": 3, "username": "judy", "error":
                                 "a user with that username or email already exists"}]
        event = db.session.scalars(select(AuditEvent).where(
            AuditEvent.event == "admin.users.import")).one()
        assert event.actor == "admin:root"
        assert event.details["change"]["imported"] == 1
        assert event.details["change"]["skipped"] == 2


def test_a_job_stops_when_its_admin_lost_the_right(app: Flask, admins: Any) -> None:
    from sso.admin import importer
    from sso.admin.models import ImportJob
    from sso.extensions import db
    from sso.users.models import User

    with app.app_context():
        job_id = _queue(app, _people(2))
        db.session.get(User, admins["ids"]["root"]).is_admin = False
        db.session.commit()
        importer.work()
        job = db.session.get(ImportJob, job_id)
        assert (job.status, job.imported) == ("failed", 0)
        assert "may no longer import users" in job.error


def test_the_console_queues_and_shows_the_progress(app: Flask, admins: Any,
                                                   as_admin: Any) -> None:
    import io

    from sso.admin import importer

    http = as_admin("root")
    checked = http.post("/admin/users/import", data={
        "csrf_token": csrf(http), "file": (io.BytesIO(_csv("kim,kim@example.net,,Kim",
                                                           "x,bad,,X")), "people.csv")},
        content_type="multipart/form-data")
    assert checked.status_code == 200
    import_id = checked.get_data(as_text=True).split("/admin/users/import/")[1].split('"')[0]
    answer = http.post(f"/admin/users/import/{import_id}", data={"csrf_token": csrf(http)})
    assert answer.status_code == 302
    job_path = answer.headers["Location"]
    assert job_path.startswith("/admin/users/import/")
    page = http.get(job_path).get_data(as_text=True)
    assert "Queued" in page and "0 of 1 row(s) done" in page and "import-reload" in page
    state = http.get(f"{job_path}/progress").get_json()
    assert state["status"] == "queued" and state["total"] == 1 and not state["finished"]
    # The request wrote nobody; the worker does.
    assert http.get("/admin/users?q=kim").get_data(as_text=True).count(">kim<") == 0
    with app.app_context():
        importer.work()
    state = http.get(f"{job_path}/progress", headers={"Accept-Language": "zh-CN"}).get_json()
    assert (state["status"], state["done"], state["imported"], state["skipped"]) == (
        "done", 1, 1, 1)
    assert state["status_text"] == "已完成"
    page = http.get(job_path).get_data(as_text=True)
    assert "1 of 1 row(s) done: 1 imported, 0 failed." in page and "import-users" in page
    assert ">kim<" in http.get("/admin/users?q=kim").get_data(as_text=True)


def test_another_admins_job_is_not_found(app: Flask, admins: Any, as_admin: Any,
                                         make_user: Any) -> None:
    make_user("root2", is_admin=True)
    with app.app_context():
        job_id = _queue(app, _people(1))
    http = as_admin("root2")
    assert http.get(f"/admin/users/import/{job_id}").status_code == 404
    assert http.get(f"/admin/users/import/{job_id}/progress").status_code == 404
    assert as_admin("root").get(f"/admin/users/import/{job_id}").status_code == 200
    assert as_admin("appadmin").get(f"/admin/users/import/{job_id}").status_code == 403
