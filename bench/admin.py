"""The admin console at scale, on PostgreSQL: the users page and search at 100,000 users, the
audit log's filters at 1,000,000 rows, and a 10,000-row CSV import.

    .venv/bin/python bench/admin.py [--users 100000] [--events 1000000] [--import-rows 10000]
                                    [--runs 7] [--json]

Creates a temporary database on the server named by ``SSO_TEST_DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``), migrates it, fills it with generated users and
audit events (``INSERT ... SELECT generate_series``, then ``ANALYZE``) and drops it at the end.
Redis at ``SSO_TEST_REDIS_URL`` (default 127.0.0.1:6379) under a key prefix of its own.

Each figure is the median (and max) of ``--runs`` runs after one warm-up, in milliseconds:
the whole console page through the Flask test client as a super admin (query, template and
all) and, for the app admin, the page limited to one app's users. The import is timed once:
the dry run (parse and check every row), the console's request that queues the import of the
valid rows, and the time until the background job has written them (invitations into the
outbox, in batches).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get("SSO_TEST_DATABASE_URL",
                              "postgresql://postgres@127.0.0.1:5432/test").replace(
    "postgresql+psycopg", "postgresql")
REDIS_URL = os.environ.get("SSO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _fill(url: str, users: int, events: int) -> None:
    """Generated users (a tenth in app A) and audit events, straight in SQL."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""
            INSERT INTO users (subject, username, email, email_verified, phone, phone_verified,
                               name, status, is_admin, created_at, updated_at,
                               must_change_password)
            SELECT md5(n::text)::uuid::text, 'user' || lpad(n::text, 7, '0'),
                   'user' || lpad(n::text, 7, '0') || '@example.com', true,
                   '+86138' || lpad(n::text, 8, '0'), false, 'User ' || n,
                   CASE WHEN n %% 50 = 0 THEN 'disabled' ELSE 'active' END, false,
                   now(), now(), false
            FROM generate_series(1, %s) AS n""", (users,))
        conn.execute("""
            INSERT INTO app_accounts (user_id, client_id, status, created_at)
            SELECT id, 'app-a', 'active', now() FROM users WHERE id % 10 = 0""")
        conn.execute("""
            INSERT INTO audit_events (at, event, outcome, user_id, subject, client_id, ip,
                                      user_agent, details, actor)
            SELECT now() - make_interval(secs => (%s - n) * 5),
                   (ARRAY['signin', 'token.issue', 'session.open', 'signin.failure',
                          'account.disable', 'client.update'])[1 + n %% 6],
                   CASE WHEN n %% 7 = 0 THEN 'failure' ELSE 'success' END,
                   1 + n %% %s, NULL,
                   (ARRAY['app-a', 'app-b', 'app-c'])[1 + n %% 3],
                   '10.0.' || (n %% 250) || '.' || (n %% 200), 'bench', '{}'::json,
                   CASE WHEN n %% 1000 = 0 THEN 'admin:root' ELSE NULL END
            FROM generate_series(1, %s) AS n""", (events, users, events))
        conn.execute("ANALYZE")


def _time(function: Any, runs: int) -> dict[str, float]:
    function()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(samples), 1), "max_ms": round(max(samples), 1)}


def _page(http: Any, path: str) -> Any:
    def run() -> None:
        answer = http.get(path)
        answer.get_data()
        answer.close()
        assert answer.status_code == 200, (path, answer.status_code)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--import-rows", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from sso import create_app, migrate
    from tests.admin.conftest import sign_in

    name = f"sso_bench_admin_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlsplit(PG_ADMIN_URL)._replace(path=f"/{name}").geturl()
    results: dict[str, Any] = {"users": args.users, "events": args.events}
    try:
        with tempfile.TemporaryDirectory() as folder:
            app = create_app({
                "TESTING": True, "SECRET_KEY": secrets.token_hex(32),
                "DATABASE_URL": url.replace("postgresql://", "postgresql+psycopg://", 1),
                "REDIS_URL": REDIS_URL, "REDIS_PREFIX": f"sso-bench-{name}:",
                "KEYS_DIR": str(Path(folder) / "keys"), "INSTANCE_PATH": folder,
                "ARGON2_MEMORY_KIB": 8 * 1024, "ARGON2_TIME_COST": 1,
            })
            migrate.upgrade(app)
            _setup(app)
            started = time.perf_counter()
            _fill(url, args.users, args.events)
            results["fill_s"] = round(time.perf_counter() - started, 1)
            if not args.json:
                print(f"{args.users} users, {args.events} audit events (filled in "
                      f"{results['fill_s']} s)", flush=True)
            root = app.test_client()
            sign_in(app, root, "root")
            appadmin = app.test_client()
            sign_in(app, appadmin, "appadmin")
            middle = f"user{args.users // 2:07d}"
            figures = {
                "users page 1": _page(root, "/admin/users"),
                f"users page after {middle}": _page(root, f"/admin/users?after={middle}"),
                "users search 'user00123' (prefix)": _page(root, "/admin/users?q=user00123"),
                "users search email 'user0099999@'": _page(root,
                                                           "/admin/users?q=user0099999@"),
                "users search mobile '+861380005'": _page(root,
                                                          "/admin/users?q=%2B861380005"),
                "users status disabled": _page(root, "/admin/users?status=disabled"),
                "users page 1, app admin (one app's users)": _page(appadmin, "/admin/users"),
                "users search, app admin": _page(appadmin, "/admin/users?q=user00012"),
                "audit newest page": _page(root, "/admin/audit"),
                "audit event=account.disable": _page(root, "/admin/audit?event=account.disable"),
                "audit actor=admin:root": _page(root, "/admin/audit?actor=admin:root"),
                "audit user=user0004242": _page(root, "/admin/audit?user=user0004242"),
                "audit ip=10.0.17.3": _page(root, "/admin/audit?ip=10.0.17.3"),
                "audit result=failure, app-b": _page(root,
                                                     "/admin/audit?result=failure&app=app-b"),
                "audit one hour, a day ago": _page(root, _hour_ago(app)),
                f"audit page older than id {args.events // 2}": _page(
                    root, f"/admin/audit?before={args.events // 2}"),
                "audit app admin (own app)": _page(appadmin, "/admin/audit"),
            }
            results["pages"] = {}
            for label, run in figures.items():
                results["pages"][label] = figure = _time(run, args.runs)
                if not args.json:
                    print(f"  {label:48} median {figure['median_ms']:8.1f} ms   "
                          f"max {figure['max_ms']:8.1f} ms", flush=True)
            results["import"] = _import(app, root, args.import_rows)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for label, value in results["import"].items():
        print(f"  import {label:41} {value}")


def _hour_ago(app: Any) -> str:
    from sso.dbtypes import utcnow

    start = utcnow() - timedelta(days=1)
    until = start + timedelta(hours=1)
    return (f"/admin/audit?since={start:%Y-%m-%dT%H:%M}&until={until:%Y-%m-%dT%H:%M}")


def _setup(app: Any) -> None:
    """The admins and app A, through the services."""
    from sso.accounts.service import create_user
    from sso.admin import remit
    from sso.extensions import db
    from sso.oidc.clients import create_client

    with app.app_context():
        root = create_user("root", email="root@example.org", password="Bench-Admin-2024-x",
                           is_admin=True)
        appadmin = create_user("appadmin", email="appadmin@example.org",
                               password="Bench-Admin-2024-x")
        for client_id in ("app-a", "app-b", "app-c"):
            create_client(client_id, ["https://a.example.com/cb"], client_id=client_id)
        db.session.flush()
        remit.grant(appadmin, "app_admin", "app-a", actor="bench")
        db.session.commit()
        assert root.id


def _import(app: Any, root: Any, rows: int) -> dict[str, Any]:
    """Dry run and import of a CSV of ``rows`` new users (the last one bad): the console's
    request that queues the job, then the job written by the worker the delivery loop runs
    (here in this process, on a thread of its own), timed until it is done."""
    import threading

    from sso.admin import importer
    from sso.admin.models import ImportJob
    from sso.extensions import db
    from sso.users.service import find_by_login
    from tests.conftest import csrf_of

    body = io.StringIO()
    body.write("username,email,phone,name\n")
    for n in range(rows - 1):
        body.write(f"new{n:06d},new{n:06d}@example.net,,New {n}\n")
    body.write("x,not-an-email,,Bad\n")
    data = body.getvalue().encode()
    with app.app_context():
        admin_id = find_by_login("root").id
        started = time.perf_counter()
        result = importer.dry_run("people.csv", data, admin_id)
        dry = time.perf_counter() - started
        invalid = len(result.invalid)
    token = csrf_of(root.get("/admin/users").get_data(as_text=True))
    started = time.perf_counter()
    answer = root.post(f"/admin/users/import/{result.import_id}", data={"csrf_token": token})
    request_s = time.perf_counter() - started
    assert answer.status_code == 302, answer.status_code
    job_id = int(answer.headers["Location"].rsplit("/", 1)[1])

    def worker() -> None:
        with app.app_context():
            while importer.work():
                pass

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    done = time.perf_counter() - started
    with app.app_context():
        job = db.session.get(ImportJob, job_id)
        status, imported, skipped = job.status, job.imported, job.skipped + job.failed
    return {"rows": rows, "file_kb": len(data) // 1024, "dry_run_s": round(dry, 2),
            "invalid_rows": invalid, "queue_request_ms": round(request_s * 1000, 1),
            "until_done_s": round(done, 2), "status": status, "imported": imported,
            "skipped": skipped}


if __name__ == "__main__":
    main()
