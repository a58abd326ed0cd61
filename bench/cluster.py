"""Benchmark the provider as a cluster: nodes behind HAProxy, and the failover gaps.

Three provider nodes (``sso serve``: granian, the production command)
share one PostgreSQL database and one Redis of their own; HAProxy (Debian's, the configuration
of tests/cluster/harness.py) balances over the first 1, 2 or 3 of them. For each size wrk runs
``client_credentials`` and the signed-in code flow (bench/lua) through HAProxy, and the CPU
time of every node, of HAProxy and of wrk is read from ``/proc``: on a machine with few cores
the throughput flattens at the cores, and the per-node CPU shows where the time went.

Then the failover gaps, measured with a steady stream of ``client_credentials`` requests:

* a node killed (SIGKILL, master and workers): the requests that failed, and how long until
  HAProxy's health check (``/readyz`` every 500 ms, out after 2 failures) took the node out;
* a Redis Sentinel failover (master, replica, one sentinel with ``down-after-milliseconds``
  as given): the time from killing the master until a request that needs Redis (creating a
  QR code) succeeds again, and how many such requests failed meanwhile.

    .venv/bin/python bench/cluster.py                    # all of it, about 3 minutes
    .venv/bin/python bench/cluster.py --duration 5 --json

Needs haproxy, redis-server, redis-sentinel, wrk and the PostgreSQL server named by
``SSO_TEST_DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``), where it
creates and drops a database of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from run import (  # noqa: E402
    FLOW_SCOPE,
    LUA,
    PG_ADMIN_URL,
    REDIRECT_URI,
    SERVICE_SCOPE,
    Target,
    cpu_seconds,
)

from tests.cluster.harness import (  # noqa: E402
    PASSWORD,
    HAProxy,
    Node,
    RedisServer,
    Sentinel,
    node_environment,
    postgres_database,
    wait_until,
)
from tests.cluster.harness import REDIRECT_URI as APP_REDIRECT_URI  # noqa: E402
from tests.cluster.harness import seed as seed_alice  # noqa: E402

WORKLOADS = ("client_credentials", "code_flow", "password_sign_in")


def seed(env: dict[str, str]) -> dict[str, str]:
    """bench/seed.py: schema, keys, the bench client, a signed-in bench user."""
    done = subprocess.run([sys.executable, str(BENCH / "seed.py")], env=env,
                          capture_output=True, text=True, cwd=BENCH.parent)
    if done.returncode != 0:
        raise SystemExit(f"seeding failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def wrk(url: str, script: str, env: dict[str, str], seconds: int, connections: int
        ) -> tuple[dict[str, Any], float]:
    """Run wrk; return its summary and the CPU seconds wrk itself used."""
    started = os.times()
    done = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
         "-s", str(LUA / script), url],
        env={**os.environ, "BENCH_LUA_DIR": str(LUA), "BENCH_RUN_ID": secrets.token_hex(4),
             **env}, capture_output=True, text=True, check=True)
    ended = os.times()
    wrk_cpu = (ended.children_user - started.children_user
               + ended.children_system - started.children_system)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):]), wrk_cpu
    raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")


def workload_env(target: Target, workload: str) -> tuple[str, dict[str, str]]:
    if workload == "client_credentials":
        return "simple.lua", {
            "BENCH_METHOD": "POST", "BENCH_PATH": "/token", "BENCH_AUTH": target.basic,
            "BENCH_BODY": f"grant_type=client_credentials&scope={SERVICE_SCOPE}"}
    return "code_flow.lua", {
        "BENCH_AUTHORIZE": target.authorize_path(), "BENCH_TOKEN_PATH": "/token",
        "BENCH_USERINFO_PATH": "/userinfo", "BENCH_COOKIE": target.cookie,
        "BENCH_AUTH": target.basic, "BENCH_REDIRECT_URI": quote(REDIRECT_URI, safe=""),
        "BENCH_VERIFIER": target.verifier}


def password_sign_ins(url: str, app: dict[str, str], seconds: float, clients: int
                      ) -> dict[str, Any]:
    """Whole password sign-ins from Python threads: /authorize, the sign-in page, the
    password (argon2id), back to the app, the code redeemed. wrk cannot fill in a form."""
    flows: list[float] = []
    failures: list[str] = []
    stop = time.monotonic() + seconds

    def one(http: requests.Session) -> None:
        from tests.conftest import pkce_pair  # noqa: PLC0415

        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(8)
        response = http.get(f"{url}/authorize", allow_redirects=False, timeout=30, params={
            "response_type": "code", "client_id": app["client_id"],
            "redirect_uri": APP_REDIRECT_URI, "scope": "openid profile", "state": state,
            "nonce": state, "code_challenge": challenge, "code_challenge_method": "S256"})
        flow_id = response.headers["Location"].split("flow=", 1)[1].split("&")[0]
        page = http.get(f"{url}/login", params={"flow": flow_id}, timeout=30).text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf
        response = http.post(f"{url}/login", allow_redirects=False, timeout=30, data={
            "csrf_token": csrf.group(1), "flow": flow_id, "username": "alice",
            "password": PASSWORD})
        for _ in range(6):
            location = response.headers.get("Location", "")
            if location.startswith(APP_REDIRECT_URI):
                break
            response = http.get(f"{url}{location}", allow_redirects=False, timeout=30)
        code = location.split("code=", 1)[1].split("&")[0]
        tokens = http.post(f"{url}/token", auth=(app["client_id"], app["secret"]), timeout=30,
                           data={"grant_type": "authorization_code", "code": code,
                                 "redirect_uri": APP_REDIRECT_URI, "code_verifier": verifier})
        assert tokens.status_code == 200, tokens.text

    def run() -> None:
        while time.monotonic() < stop:
            try:
                one(requests.Session())  # a new browser: no SSO session yet
                flows.append(time.monotonic())
            except (AssertionError, KeyError, IndexError, requests.RequestException) as error:
                failures.append(repr(error))

    started = time.monotonic()
    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"flows": len(flows), "failures": len(failures),
            "duration_us": int((time.monotonic() - started) * 1e6), "sample": failures[:3]}


def throughput(args: argparse.Namespace, folder: Path, nodes: list[Node],
               target: Target, app: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for size in args.sizes:
        balancer = HAProxy(nodes[:size], folder / f"haproxy-{size}").start()
        try:
            balancer.wait_states({n.name: "UP" for n in nodes[:size]})
            for workload in args.workloads:
                if workload == "password_sign_in":
                    password_sign_ins(balancer.url, app, max(1, args.warmup), 8)
                else:
                    script, env = workload_env(target, workload)
                    wrk(balancer.url, script, env, max(1, args.warmup), args.connections)
                before = {n.name: cpu_seconds(n.process.pid) for n in nodes}  # type: ignore[union-attr]
                proxy_before = cpu_seconds(balancer.process.pid)  # type: ignore[union-attr]
                if workload == "password_sign_in":
                    found = password_sign_ins(balancer.url, app, args.duration, 8)
                    summary = {"requests": 0, "p50_us": 0, "p99_us": 0, "status_errors": 0,
                               "socket_errors": 0, **found}
                    wrk_cpu = 0.0
                else:
                    summary, wrk_cpu = wrk(balancer.url, script, env, args.duration,
                                           args.connections)
                seconds = summary["duration_us"] / 1e6
                cpu = {n.name: (cpu_seconds(n.process.pid) - before[n.name]) / seconds  # type: ignore[union-attr]
                       for n in nodes}
                units = summary["requests"] if workload == "client_credentials" else \
                    summary["flows"]
                rows.append({
                    "nodes": size, "workload": workload, "per_second": units / seconds,
                    "per_minute": 60 * units / seconds,
                    "p50_ms": summary["p50_us"] / 1000, "p99_ms": summary["p99_us"] / 1000,
                    "errors": summary["status_errors"] + summary["socket_errors"]
                    + summary["failures"],
                    "node_cpu": cpu,
                    # Units per CPU-second of the nodes: "per core", steadier than /s when
                    # other work shares the machine.
                    "per_node_cpu_second": units / seconds / max(sum(cpu.values()), 1e-9),
                    "haproxy_cpu": (cpu_seconds(balancer.process.pid)  # type: ignore[union-attr]
                                    - proxy_before) / seconds,
                    "wrk_cpu": wrk_cpu / seconds,
                })
                print(_row_text(rows[-1]), file=sys.stderr)
        finally:
            balancer.stop()
    return rows


def _row_text(row: dict[str, Any]) -> str:
    cpu = " ".join(f"{name} {share:.0%}" for name, share in row["node_cpu"].items())
    return (f"{row['nodes']} node(s) {row['workload']:<18} {row['per_second']:8.1f}/s "
            f"({row['per_node_cpu_second']:.0f}/CPU-s) p50 {row['p50_ms']:6.1f} ms "
            f"p99 {row['p99_ms']:6.1f} ms errors {row['errors']} "
            f"| CPU {cpu} haproxy {row['haproxy_cpu']:.0%} wrk {row['wrk_cpu']:.0%}")


class Stream:
    """Steady requests from a few threads, each outcome kept with its times."""

    def __init__(self, send: Any, clients: int = 4) -> None:
        self.send = send
        self.outcomes: list[tuple[float, float, bool]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        http = requests.Session()
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                ok = self.send(http)
            except requests.RequestException:
                ok = False
            self.outcomes.append((started, time.monotonic(), ok))
            if not ok:
                time.sleep(0.01)

    def __enter__(self) -> Stream:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def node_failover(folder: Path, nodes: list[Node], target: Target) -> dict[str, Any]:
    balancer = HAProxy(nodes, folder / "haproxy-failover").start()
    try:
        balancer.wait_states({n.name: "UP" for n in nodes})

        def send(http: requests.Session) -> bool:
            return http.post(f"{balancer.url}/token", timeout=30, headers={
                "Authorization": target.basic}, data={
                "grant_type": "client_credentials", "scope": SERVICE_SCOPE}).status_code == 200

        with Stream(send, clients=6) as stream:
            time.sleep(2)
            killed_at = time.monotonic()
            nodes[-1].kill()
            balancer.wait_states({nodes[-1].name: "DOWN"})
            down_at = time.monotonic()
            time.sleep(2)
        failed = [o for o in stream.outcomes if not o[2]]
        return {
            "requests": len(stream.outcomes), "failed": len(failed),
            "failed_window_ms": 1000 * (max(o[1] for o in failed) - min(o[0] for o in failed))
            if failed else 0.0,
            "taken_out_after_s": down_at - killed_at,
        }
    finally:
        balancer.stop()


def redis_failover(folder: Path, database_url: str, down_after_ms: int,
                   shared: dict[str, str]) -> dict[str, Any]:
    master = RedisServer(folder / f"master-{down_after_ms}").start()
    started: list[Any] = [master]
    try:
        replica = RedisServer(folder / f"replica-{down_after_ms}",
                              extra=["--replicaof", "127.0.0.1", str(master.port)]).start()
        started.append(replica)
        sentinel = Sentinel(folder / f"sentinel-{down_after_ms}", master.port,
                            down_after_ms=down_after_ms)
        started.append(sentinel.start())
        import redis  # noqa: PLC0415

        watcher = redis.Redis(port=sentinel.port)
        wait_until(lambda: watcher.sentinel_slaves("sso"), 30, "the sentinel knows the replica")
        env = node_environment(folder / f"sentinel-node-{down_after_ms}", "http://127.0.0.1:5000",
                               database_url, {"REDIS_SENTINELS": f"127.0.0.1:{sentinel.port}",
                                              "REDIS_MASTER_NAME": "sso"})
        # The cluster's secrets: its signing keys in the database open only with its
        # key-encryption key.
        for name in ("SSO_SECRET_KEY", "SSO_KEY_ENCRYPTION_KEY"):
            env[name] = shared[name]
        node = Node(f"s{down_after_ms}", env, folder / f"sentinel-node-{down_after_ms}")
        started.append(node.start())
        node.wait_ready()

        def send(http: requests.Session) -> bool:
            """Create a QR code: needs Redis (and the page's CSRF token, read once)."""
            token = getattr(http, "csrf", None)
            if token is None:
                page = http.get(f"{node.url}/qr/login", timeout=30).text
                found = re.search(r'data-csrf="([^"]+)"', page) or re.search(
                    r'name="csrf_token" value="([^"]+)"', page)
                assert found
                token = http.csrf = found.group(1)  # type: ignore[attr-defined]
            return http.post(f"{node.url}/qr/sessions", headers={"X-CSRF-Token": token},
                             timeout=30).status_code == 201

        with Stream(send, clients=2) as stream:
            time.sleep(2)
            killed_at = time.monotonic()
            master.kill()
            wait_until(lambda: sentinel.master()[1] == replica.port, 60, "promotion",
                       interval=0.05)
            promoted_at = time.monotonic()
            wait_until(lambda: any(o[0] > promoted_at and o[2] for o in stream.outcomes), 60,
                       "QR codes again")
            time.sleep(1)
        failed = [o for o in stream.outcomes if not o[2]]
        back = min(o[1] for o in stream.outcomes if o[0] > killed_at and o[2])
        return {"down_after_ms": down_after_ms, "promoted_after_s": promoted_at - killed_at,
                "redis_features_back_after_s": back - killed_at, "failed_requests": len(failed),
                "requests": len(stream.outcomes)}
    finally:
        for process in reversed(started):
            process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds before each run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="server workers per node")
    parser.add_argument("--sizes", default="1,2,3", help="numbers of nodes behind HAProxy")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--sentinel-down-after", default="1000,3000",
                        help="down-after-milliseconds values for the Redis failover runs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.sizes = args.sizes if args.workloads else [max(args.sizes)]
    with tempfile.TemporaryDirectory(prefix="sso-bench-cluster-") as name:
        folder = Path(name)
        own_redis = RedisServer(folder / "redis").start()
        nodes: list[Node] = []
        try:
            with postgres_database(PG_ADMIN_URL.replace("postgresql+psycopg", "postgresql")
                                   ) as database_url:
                env = node_environment(folder, "http://127.0.0.1:9", database_url,
                                       {"REDIS_URL": own_redis.url})
                facts = seed(env)
                app = seed_alice(env)  # alice with a password, an app for her sign-ins
                target = Target(name="cluster", base_url="", paths={"authorize": "/authorize"},
                                client_id=facts["client_id"],
                                client_secret=facts["client_secret"], cookie=facts["cookie"])
                nodes = [Node(f"n{i}", env, folder / f"n{i}", workers=args.workers)
                         for i in range(1, max(args.sizes) + 1)]
                for node in nodes:
                    node.start()
                for node in nodes:
                    node.wait_ready()
                results: dict[str, Any] = {
                    "cores": os.cpu_count(), "workers_per_node": args.workers,
                    "duration_s": args.duration, "connections": args.connections,
                    "scope": FLOW_SCOPE,
                    "throughput": throughput(args, folder, nodes, target, app)}
                if len(nodes) >= 2:
                    results["node_failover"] = node_failover(folder, nodes, target)
                    print(f"node killed: {results['node_failover']}", file=sys.stderr)
                results["redis_failover"] = []
                for value in args.sentinel_down_after.split(","):
                    if value:
                        found = redis_failover(folder, database_url, int(value), env)
                        results["redis_failover"].append(found)
                        print(f"redis failover: {found}", file=sys.stderr)
                for node in nodes:
                    node.stop()
        finally:
            for node in nodes:
                node.stop()
            own_redis.stop()
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
