"""Instructions per request of one workload, counted by callgrind: for small changes.

    .venv/bin/python bench/instructions.py client_credentials [--tree PATH] [--requests 200]
        [--database URL] [--served]

Wall-clock A/B runs on a shared machine move by 30 % and more; an instruction count moves by
a few percent at most (the request thread's own timed checks, such as the key store's, come
round more often per request when the machine is busy): compare counts taken alike.
The workload runs in process through the app's WSGI callable (no HTTP
server, no test client for the measured requests), twice under ``valgrind --tool=callgrind``:
after 50 warm-up requests, once with 50 more and once with 50 + ``--requests``; the
difference over ``--requests`` is one request's cost with start-up, imports and warm-up
cancelled out. Only the requests' own thread is counted (``--separate-threads``): the
outbox's delivery threads wake on a timer and would add a share that grows with the wall
time. ``--tree`` measures another checkout's ``sso`` (a ``git worktree`` of an older
commit) with this checkout's environment. Needs valgrind (``apt-get install -y valgrind``)
and the real Redis; SQLite unless ``--database`` says otherwise (a PostgreSQL URL names the
server and the database to create each run's own database from).
"""

from __future__ import annotations

import argparse
import base64
import glob
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import direct_call  # noqa: E402
import scratch_database  # noqa: E402

WORKLOADS = ("client_credentials", "introspection", "refresh", "code_flow")
WARMUP = 50


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--tree", default=str(BENCH.parent), help="the checkout to measure")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--database", help="an SQLAlchemy URL (default: a fresh SQLite file);"
                        " for PostgreSQL, a server where each run makes a database of its own")
    parser.add_argument("--served", action="store_true",
                        help="log as sso serve does: JSON, an access line per request")
    parser.add_argument("--run", type=int, help=argparse.SUPPRESS)  # the measured process
    args = parser.parse_args()
    if args.run is not None:
        _drive(args)
        return
    counts = [_count(args, extra) for extra in (0, args.requests)]
    per_request = (counts[1] - counts[0]) / args.requests
    print(f"{args.workload}: {per_request:,.0f} instructions per request "
          f"({Path(args.tree).resolve()})")


def _count(args: argparse.Namespace, requests: int) -> int:
    """Instructions of the main thread for the warm-up and ``requests`` more."""
    with tempfile.TemporaryDirectory(prefix="sso-instructions-") as tmp:
        out = f"{tmp}/callgrind.out"
        command = ["valgrind", "--tool=callgrind", "--separate-threads=yes",
                   f"--callgrind-out-file={out}", sys.executable, __file__, args.workload,
                   "--tree", args.tree, "--run", str(requests)]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        with scratch_database.fresh_database(args.database, "sso_instructions") as database:
            if database:
                command += ["--database", database]
            if args.served:
                command.append("--served")
            subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        main_thread = sorted(glob.glob(f"{out}-01") or glob.glob(f"{out}*"))[0]
        totals = re.search(r"^(?:summary|totals): (\d+)", Path(main_thread).read_text(),
                           re.MULTILINE)
        if totals is None:
            raise SystemExit(f"no instruction count in {main_thread}")
        return int(totals.group(1))


def _drive(args: argparse.Namespace) -> None:
    """Seed a provider, warm the workload up, then run ``args.run`` more requests."""
    sys.path.insert(0, args.tree)
    tmp = tempfile.mkdtemp(prefix="sso-instructions-")
    os.environ.update({
        "SSO_ISSUER": "http://127.0.0.1:5000",
        "SSO_DATABASE_URL": args.database or f"sqlite:///{tmp}/sso.sqlite3",
        "SSO_REDIS_URL": os.environ.get("SSO_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "SSO_REDIS_PREFIX": f"ssoinstructions{os.getpid()}:",
        "SSO_KEYS_DIR": f"{tmp}/keys", "SSO_INSTANCE_PATH": f"{tmp}/instance",
        "SSO_SECRET_KEY": secrets.token_hex(32),
        "SSO_KEY_ENCRYPTION_KEY": secrets.token_hex(32),
    })
    seed = json.loads(subprocess.run(
        [sys.executable, str(BENCH / "seed.py")], check=True, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": args.tree}).stdout)
    from sso import create_app  # noqa: PLC0415

    app = create_app()
    if args.served:
        direct_call.log_as_served(app)
    basic = "Basic " + base64.b64encode(
        f"{seed['client_id']}:{seed['client_secret']}".encode()).decode()
    browser = app.test_client()
    browser.set_cookie("sso_session", seed["cookie"].split("=", 1)[1])

    def post(path: str, form: dict[str, str]) -> dict[str, Any]:
        return direct_call.post(app, path, form, basic)

    def code_flow() -> dict[str, Any]:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        answer = browser.get("/authorize", query_string={
            "response_type": "code", "client_id": seed["client_id"],
            "redirect_uri": seed["redirect_uri"], "scope": "openid profile email",
            "code_challenge": challenge, "code_challenge_method": "S256", "state": "s",
            "nonce": secrets.token_urlsafe(8)})
        code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
        tokens = post("/token", {"grant_type": "authorization_code", "code": code,
                                 "redirect_uri": seed["redirect_uri"],
                                 "code_verifier": verifier})
        # UserInfo with the new token, as bench/lua/code_flow.lua ends each flow.
        direct_call.get(app, "/userinfo", f"Bearer {tokens['access_token']}")
        return tokens

    first = code_flow()
    refresh, access = first["refresh_token"], first["access_token"]

    def one() -> None:
        nonlocal refresh
        if args.workload == "client_credentials":
            post("/token", {"grant_type": "client_credentials", "scope": "api"})
        elif args.workload == "introspection":
            if not post("/introspect", {"token": access})["active"]:
                raise SystemExit("introspection: the token is not active")
        elif args.workload == "refresh":
            refresh = post("/token", {"grant_type": "refresh_token",
                                      "refresh_token": refresh})["refresh_token"]
        else:
            code_flow()

    for _ in range(WARMUP + args.run):
        one()


if __name__ == "__main__":
    main()
