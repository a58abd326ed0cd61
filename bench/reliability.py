"""Reliability figures from one run (docs/hardening.md, issue 10), on a PostgreSQL and a Redis
of its own (started from the Debian binaries into a temporary folder, never the shared ones):

1. first sign-ins (the app's events pushed at once): sign-ins per second and latency
   percentiles with an events endpoint that answers at once, and with one that hangs;
2. faults: how long a request takes to fail, how many fail, and how long until the provider
   answers again, for Redis killed, PostgreSQL stopped and restarted, PostgreSQL frozen;
3. enumeration: the time password reset, self-registration and sign-in answer for a known
   and an unknown name, and a Mann-Whitney test of the two samples.

    .venv/bin/python bench/reliability.py            # about three minutes
    .venv/bin/python bench/reliability.py --json

Requests go through Flask's test client from threads (the provider's code, its pool and its
stores are real; no HTTP server in between), with argon2 at the test suite's cost.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sso import create_app, migrate, outbound  # noqa: E402
from tests.conftest import PASSWORD, Flow, basic, csrf_of  # noqa: E402
from tests.fault.services import Postgres, Redis  # noqa: E402
from tests.reliability.peers import Peer, answer  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(math.ceil(q * len(ordered))) - 1)]


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation with ties)."""
    pooled = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks = [0.0] * len(pooled)
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        i = j + 1
    r_a = sum(r for r, (_, group) in zip(ranks, pooled, strict=True) if group == 0)
    n1, n2 = len(a), len(b)
    u = r_a - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    sd = math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    z = (u - mean) / sd if sd else 0.0
    return math.erfc(abs(z) / math.sqrt(2))


def _app(pg: Postgres, redis: Redis, folder: Path) -> Any:
    app = create_app({
        "TESTING": True, "ISSUER": "http://sso.test", "SECRET_KEY": secrets.token_hex(32),
        "DATABASE_URL": pg.url, "REDIS_URL": redis.url, "REDIS_PREFIX": "bench:",
        "KEYS_DIR": str(folder / "keys"), "INSTANCE_PATH": str(folder / "instance"),
        "ARGON2_MEMORY_KIB": 8 * 1024, "ARGON2_TIME_COST": 1,
        "DB_CONNECT_TIMEOUT": 2, "DB_POOL_TIMEOUT": 2, "DB_STATEMENT_TIMEOUT": 2,
        "RATE_LIMIT_LOGIN_IP": "100000/60", "RATE_LIMIT_ACCOUNT_IP": "100000/60",
    })
    migrate.upgrade(app)
    return app


def _users(app: Any, names: list[str]) -> None:
    from sso.accounts.service import create_user
    from sso.extensions import db

    with app.app_context():
        for name in names:
            create_user(name, password=PASSWORD, email=f"{name}@example.com")
        db.session.commit()


def _client(app: Any, name: str, **kwargs: Any) -> Any:
    from sso.extensions import db
    from sso.oidc.clients import create_client
    from tests.conftest import _Snapshot

    with app.app_context():
        kwargs.setdefault("grant_types", ["authorization_code", "refresh_token"])
        client, secret = create_client(name, kwargs.pop("redirect_uris",
                                                        ["https://erp.example.com/cb"]),
                                       first_party=True, **kwargs)
        db.session.commit()
        return _Snapshot(client_id=client.client_id, secret=secret,
                         redirect_uri=client.redirect_uris[0] if client.redirect_uris else None)


def _parallel(calls: list[Callable[[], Any]], width: int) -> tuple[list[float], float, int]:
    """Run ``calls`` ``width`` at a time; (latencies, wall seconds, failures)."""
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    pending = list(calls)

    def worker() -> None:
        nonlocal failures
        while True:
            with lock:
                if not pending:
                    return
                call = pending.pop()
            began = time.perf_counter()
            try:
                ok = call()
            except Exception:  # noqa: BLE001 - counted
                ok = False
            with lock:
                latencies.append(time.perf_counter() - began)
                failures += 0 if ok else 1

    began = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(width)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - began, failures


def first_sign_ins(app: Any, count: int, width: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    release = threading.Event()
    for label, behave in (("answering", answer(202)), ("hanging", lambda c, b: release.wait(60)),
                          ("answering again", answer(202))):
        outbound.reset()
        peer = Peer(behave)
        erp = _client(app, f"ERP {label}", policy={"activation": "auto",
                                                   "events_endpoint": peer.url})
        names = [f"{label.replace(' ', '')}{n:03d}" for n in range(count)]
        _users(app, names)
        calls = [lambda n=n, erp=erp: "code" in Flow(app.test_client(), erp).authorize(
                 username=n) for n in names]
        latencies, wall, failed = _parallel(calls, width)
        release.set()
        peer.stop()
        results[label] = {"sign_ins": count, "concurrency": width, "failed": failed,
                          "per_second": round(count / wall, 1),
                          "p50_ms": round(percentile(latencies, 0.5) * 1000),
                          "p99_ms": round(percentile(latencies, 0.99) * 1000),
                          "max_ms": round(max(latencies) * 1000)}
        release.clear()
    return results


def _probe(app: Any, batch: Any) -> Callable[[], int]:
    http = app.test_client()

    def call() -> int:
        return http.post("/token", data={"grant_type": "client_credentials"},
                         headers=basic(batch)).status_code
    return call


def faults(app: Any, pg: Postgres, redis: Redis) -> dict[str, Any]:
    batch = _client(app, "Batch", grant_types=["client_credentials"], scope="reports",
                    redirect_uris=[])
    probe = _probe(app, batch)
    erp = _client(app, "ERP faults")
    _users(app, ["faulty"])
    out: dict[str, Any] = {}

    def timed(call: Callable[[], Any]) -> tuple[Any, float]:
        began = time.perf_counter()
        value = call()
        return value, round(time.perf_counter() - began, 2)

    def until_ok(call: Callable[[], int], limit: float = 60) -> float:
        began = time.perf_counter()
        while time.perf_counter() - began < limit:
            if call() == 200:
                return round(time.perf_counter() - began, 2)
            time.sleep(0.05)
        return float("inf")

    # Redis killed: sign-in and tokens go on (nothing lost), QR says unavailable.
    redis.kill()
    statuses = []
    for _ in range(10):
        result = Flow(app.test_client(), erp).authorize(username="faulty")
        statuses.append("code" in result)
        statuses.append(probe() == 200)
    out["redis_killed"] = {"requests": len(statuses), "lost": statuses.count(False)}
    redis.start()

    # PostgreSQL stopped, then started again.
    pg.stop()
    answers = [timed(probe) for _ in range(5)]
    pg.start()
    out["postgres_stopped"] = {
        "statuses": sorted({a for a, _ in answers}),
        "slowest_failure_s": max(t for _, t in answers),
        "recovered_after_start_s": until_ok(probe)}

    # PostgreSQL frozen (SIGSTOP) for the length of the probes, then thawed.
    pg.freeze()
    answers = [timed(probe) for _ in range(3)]
    pg.thaw()
    out["postgres_frozen"] = {
        "statuses": sorted({a for a, _ in answers}),
        "slowest_failure_s": max(t for _, t in answers),
        "recovered_after_thaw_s": until_ok(probe)}
    return out


def enumeration(app: Any, tries: int) -> dict[str, Any]:
    app.config["SELF_REGISTRATION"] = True
    # A known name per try: five wrong passwords for one name would lock it, and a locked
    # name is answered without a hash (the same for unknown names, which are fresh here).
    _users(app, ["known"] + [f"known{tag}{n}" for tag in "ab" for n in range(tries)])

    def post(path: str, **fields: str) -> float:
        http = app.test_client()
        page = http.get(path).get_data(as_text=True)
        began = time.perf_counter()
        http.post(path, data={"csrf_token": csrf_of(page), **fields})
        return time.perf_counter() - began

    cases = {
        "password reset": lambda known, n: post(
            "/password/reset", login="known" if known else f"nobody{n}"),
        "registration": lambda known, n: post(
            "/register", username=f"new{int(known)}{n}", email="known@example.com" if known
            else f"free{n}@example.com", password="Fresh-start-42!",
            confirm="Fresh-start-42!"),
        "sign-in": lambda known, n: post(
            "/login", username=f"known{n}" if known else f"nobody{n}",
            password="Wrong-guess-1"),
    }
    out: dict[str, Any] = {}
    for tag, floor in (("a", app.config["EVEN_ANSWER_SECONDS"]), ("b", 0.0)):
        app.config["EVEN_ANSWER_SECONDS"] = floor
        for name, case in cases.items():
            if name == "sign-in" and floor == 0.0:
                continue  # sign-in has no floor: its equaliser is the hash
            known, unknown = [], []
            for n in range(tries):  # interleaved, so drift hits both
                known.append(case(True, f"{tag}{n}"))
                unknown.append(case(False, f"{tag}{n}"))
            out[f"{name} (floor {floor} s)"] = {
                "known_median_ms": round(statistics.median(known) * 1000, 1),
                "unknown_median_ms": round(statistics.median(unknown) * 1000, 1),
                "p_value": round(mann_whitney_p(known, unknown), 4)}
        from sso.extensions import get_redis

        with app.app_context():  # forget the lockout counts of the sign-in case
            store = get_redis()
            keys = list(store.client.scan_iter(match=store.key("*")))
            if keys:
                store.client.delete(*keys)
    app.config["EVEN_ANSWER_SECONDS"] = 0.5
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sign-ins", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--tries", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sso-bench-rel-"))
    pg_folder = Path(tempfile.mkdtemp(prefix="sso-bench-pg-"))
    pg = Postgres(pg_folder).init().start()
    redis = Redis(folder).start()
    try:
        app = _app(pg, redis, folder)
        report = {"first_sign_ins": first_sign_ins(app, args.sign_ins, args.concurrency),
                  "faults": faults(app, pg, redis),
                  "enumeration": enumeration(app, args.tries)}
    finally:
        pg.stop()
        redis.kill()
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(pg_folder, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for section, rows in report.items():
        print(f"\n{section}")
        for name, row in rows.items():
            print(f"  {name:32} " + "  ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
