"""Profile one workload in-process (no HTTP server): where does a request's time go?

    .venv/bin/python bench/profiling.py client_credentials [--requests 2000] [--database URL]
        [--wsgi] [--served] [--time-only | --dump FILE | --show-sql]

Seeds a temporary provider like bench/run.py does, drives the workload through Flask's test
client and prints cProfile's top functions by cumulative time. Runs with the real Redis.
``--wsgi`` calls the app's WSGI callable with the plain environ a server hands it instead
(the direct requests only): the test client builds and parses more than the request costs.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import hashlib
import os
import pstats
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import direct_call  # noqa: E402
import scratch_database  # noqa: E402

WORKLOADS = ("discovery", "jwks", "client_credentials", "code_flow", "refresh", "introspection")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--database", help="an SQLAlchemy URL (default: a fresh SQLite file);"
                        " a PostgreSQL URL names the server to make the run's own database on")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--time-only", action="store_true",
                        help="no profiler: print the CPU time per iteration only")
    parser.add_argument("--show-sql", action="store_true",
                        help="print each SQL statement of one iteration")
    parser.add_argument("--dump", metavar="FILE", help="write the cProfile stats to FILE")
    parser.add_argument("--served", action="store_true",
                        help="log as sso serve does: JSON, an access line per request")
    parser.add_argument("--wsgi", action="store_true",
                        help="call the WSGI app with a server's plain environ instead of "
                             "the test client (client_credentials, refresh, introspection)")
    args = parser.parse_args()
    with (tempfile.TemporaryDirectory(prefix="sso-profile-") as tmp,
          scratch_database.fresh_database(args.database, "sso_profiling") as database):
        os.environ.update({
            "SSO_ISSUER": "http://127.0.0.1:5000",
            "SSO_DATABASE_URL": database or f"sqlite:///{tmp}/sso.sqlite3",
            "SSO_REDIS_URL": os.environ.get("SSO_REDIS_URL", "redis://127.0.0.1:6379/0"),
            "SSO_REDIS_PREFIX": f"ssoprofile{os.getpid()}:",
            "SSO_KEYS_DIR": f"{tmp}/keys", "SSO_INSTANCE_PATH": f"{tmp}/instance",
            "SSO_SECRET_KEY": secrets.token_hex(32),
            "SSO_KEY_ENCRYPTION_KEY": secrets.token_hex(32),
        })
        import json  # noqa: PLC0415

        seed = json.loads(subprocess.run([sys.executable, str(BENCH / "seed.py")], check=True,
                                         capture_output=True, text=True).stdout)
        from sso import create_app  # noqa: PLC0415

        app = create_app()
        if args.served:
            direct_call.log_as_served(app)
        client = app.test_client()
        client.set_cookie("sso_session", seed["cookie"].split("=", 1)[1])
        # The other requests carry no cookie, as the bench's: a program's own calls.
        direct = app.test_client()
        basic = "Basic " + base64.b64encode(
            f"{seed['client_id']}:{seed['client_secret']}".encode()).decode()
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()

        def code_flow() -> dict:
            nonce = secrets.token_urlsafe(8)
            response = client.get("/authorize", query_string={
                "response_type": "code", "client_id": seed["client_id"],
                "redirect_uri": seed["redirect_uri"], "scope": "openid profile email",
                "code_challenge": challenge, "code_challenge_method": "S256",
                "state": nonce, "nonce": nonce})
            code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
            token = direct.post("/token", data={
                "grant_type": "authorization_code", "code": code,
                "redirect_uri": seed["redirect_uri"], "code_verifier": verifier},
                headers={"Authorization": basic}).get_json()
            direct.get("/userinfo",
                       headers={"Authorization": "Bearer " + token["access_token"]})
            return token

        refresh = code_flow()["refresh_token"]
        access = code_flow()["access_token"]

        def wsgi_post(path: str, form: dict[str, str]) -> dict:
            return direct_call.post(app, path, form, basic)

        def one() -> None:
            nonlocal refresh
            if args.wsgi:
                if args.workload == "client_credentials":
                    wsgi_post("/token", {"grant_type": "client_credentials", "scope": "api"})
                elif args.workload == "refresh":
                    refresh = wsgi_post("/token", {"grant_type": "refresh_token",
                                                   "refresh_token": refresh})["refresh_token"]
                elif args.workload == "introspection":
                    assert wsgi_post("/introspect", {"token": access})["active"]
                else:
                    parser.error(f"--wsgi does not take {args.workload}")
                return
            if args.workload == "discovery":
                client.get("/.well-known/openid-configuration")
            elif args.workload == "jwks":
                client.get("/jwks.json")
            elif args.workload == "client_credentials":
                r = direct.post("/token", data={"grant_type": "client_credentials",
                                                "scope": "api"},
                                headers={"Authorization": basic})
                assert r.status_code == 200, r.data
            elif args.workload == "code_flow":
                code_flow()
            elif args.workload == "refresh":
                r = direct.post("/token", data={"grant_type": "refresh_token",
                                                "refresh_token": refresh},
                                headers={"Authorization": basic})
                assert r.status_code == 200, r.data
                refresh = r.get_json()["refresh_token"]
            else:
                r = direct.post("/introspect", data={"token": access},
                                headers={"Authorization": basic})
                assert r.get_json()["active"], r.data

        for _ in range(50):
            one()
        statements = []
        from sqlalchemy import event  # noqa: PLC0415
        from sqlalchemy.engine import Engine  # noqa: PLC0415

        @event.listens_for(Engine, "before_cursor_execute")
        def _count(conn: object, cursor: object, statement: str, *rest: object) -> None:
            statements.append(statement.split(None, 1)[0].upper())
            if args.show_sql:
                print("  " + " ".join(statement.split())[:300])

        one()
        print(f"{args.workload}: {len(statements)} SQL statements per iteration "
              f"({', '.join(statements)})")
        event.remove(Engine, "before_cursor_execute", _count)
        if args.time_only:
            started = time.process_time()
            for _ in range(args.requests):
                one()
            spent = (time.process_time() - started) / args.requests
            print(f"{args.workload}: {spent * 1e6:.0f} µs CPU per iteration "
                  f"({'plain WSGI call' if args.wsgi else 'test client'})")
            return
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.requests):
            one()
        profiler.disable()
        if args.dump:
            profiler.dump_stats(args.dump)
        stats = pstats.Stats(profiler)
        print(f"{args.workload}: {stats.total_tt / args.requests * 1e6:.0f} µs per iteration "
              f"(profiled), {stats.total_calls / args.requests:.0f} Python function calls")
        stats.sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
