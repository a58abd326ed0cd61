"""Benchmark the provider against panva's oidc-provider, per core, with wrk.

Our provider runs under the production server command (``sso serve``: granian, one worker)
pinned to one core; wrk runs pinned to the other. Each workload runs for a fixed time
after a warm-up, then the same workloads run against the reference provider (installed from
npm into ``~/.cache/sso-bench/reference``) and against a bare Flask route under the same
server command (the stack floor). See bench/README.md.

    make bench BENCH_ARGS="--duration 10 --json"
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import requests

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LUA = BENCH / "lua"
CACHE = Path(os.environ.get("SSO_BENCH_CACHE", Path.home() / ".cache" / "sso-bench"))
REFERENCE_PACKAGES = ["oidc-provider@9", "ioredis@5"]
REDIRECT_URI = "http://127.0.0.1:9/callback"
FLOW_SCOPE = "openid profile email"
SERVICE_SCOPE = "api"
PG_ADMIN_URL = os.environ.get("SSO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: Seconds a seeding request (a code flow before a workload) may take on a busy machine.
SEED_TIMEOUT = 60
WORKLOADS = ("discovery", "jwks", "client_credentials", "code_flow", "refresh", "introspection")
#: What ``bench/lean_floor.py`` answers.
LEAN_WORKLOADS = ("code_flow", "refresh")
TOKEN_WORKLOADS = ("client_credentials", "code_flow", "refresh", "introspection")


@dataclass
class Target:
    """A running provider and what the workloads need to talk to it."""

    name: str
    base_url: str
    paths: dict[str, str]
    client_id: str
    client_secret: str
    cookie: str
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    #: Signs the bench user in again, for a provider whose sessions a run may evict.
    sign_in: Any = None
    #: Process group of the server, whose CPU time each run measures.
    pgid: int = 0
    #: What else serves it and is counted too: a private redis-server's pid, and a function
    #: listing the PostgreSQL backends serving its database.
    extra_pids: list[int] = field(default_factory=list)
    backends: Any = None
    #: The backends the last :meth:`cpu` sample found.
    database_pids: set[int] = field(default_factory=set)

    def cpu(self) -> dict[int, float]:
        """CPU seconds so far of every process serving this target, by pid."""
        found = group_cpu(self.pgid)
        self.database_pids = set(self.backends()) if self.backends else set()
        for pid in [*self.extra_pids, *self.database_pids]:
            found[pid] = proc_cpu(pid)
        return found

    @property
    def basic(self) -> str:
        pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
        return "Basic " + base64.b64encode(pair.encode()).decode()

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def authorize_path(self) -> str:
        query = urlencode({
            "response_type": "code", "client_id": self.client_id, "redirect_uri": REDIRECT_URI,
            "scope": FLOW_SCOPE, "code_challenge": self.challenge,
            "code_challenge_method": "S256",
        }, quote_via=quote)
        return f"{self.paths['authorize']}?{query}"

    def code_flow(self, session: requests.Session | None = None) -> dict[str, Any]:
        """One code flow with Python, for seeding: returns the token response."""
        http = session or requests.Session()
        nonce = secrets.token_urlsafe(12)
        url = f"{self.base_url}{self.authorize_path()}&state={nonce}&nonce={nonce}"
        headers = {"Cookie": self.cookie} if self.cookie else {}
        for _hop in range(8):
            response = http.get(url, headers=headers, allow_redirects=False, timeout=SEED_TIMEOUT)
            location = response.headers.get("Location", "")
            if response.status_code not in (302, 303) or not location:
                raise RuntimeError(f"{self.name}: authorize answered {response.status_code}: "
                                   f"{response.text[:300]}")
            if location.startswith(REDIRECT_URI):
                break
            url = location if location.startswith("http") else self.base_url + location
        else:
            raise RuntimeError(f"{self.name}: authorize never reached the redirect URI")
        query = parse_qs(urlsplit(location).query)
        if "code" not in query:
            raise RuntimeError(f"{self.name}: no code in {location}")
        response = http.post(self.base_url + self.paths["token"], data={
            "grant_type": "authorization_code", "code": query["code"][0],
            "redirect_uri": REDIRECT_URI, "code_verifier": self.verifier,
        }, headers={"Authorization": self.basic}, timeout=SEED_TIMEOUT)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


# Processes.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server did not answer {url}:\n{log.read_text()[-3000:]}")


@contextmanager
def running(command: list[str], env: dict[str, str], ready_url: str, log: Path,
            cwd: Path = ROOT) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=out,
                                   start_new_session=True)
    try:
        wait_until_up(ready_url, process, log)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _stat_fields(stat: Path) -> list[str]:
    try:
        return stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def proc_cpu(pid: int) -> float:
    """CPU time (user + system) used so far by one process; 0 once it is gone."""
    fields = _stat_fields(Path(f"/proc/{pid}/stat"))
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS if fields else 0.0


def group_cpu(pgid: int) -> dict[int, float]:
    """CPU time used so far by each live process of a process group, by pid."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat_fields(stat)
        if fields and int(fields[2]) == pgid:  # pgrp; utime and stime follow at 11 and 12
            found[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return found


def cpu_spent(before: dict[int, float], after: dict[int, float],
              among: Collection[int] | None = None) -> float:
    """CPU seconds spent between two samples by the processes alive at the second (a process
    that started in between counts from zero), or by those of them in ``among``."""
    return sum(spent - before.get(pid, 0.0) for pid, spent in after.items()
               if among is None or pid in among)


@contextmanager
def private_redis(workdir: Path, name: str, durable: bool) -> Iterator[tuple[str, int]]:
    """A redis-server of its own (its CPU is counted with the target it serves); durable is
    an append-only file synced every second, Redis's usual durable setting."""
    port = free_port()
    folder = workdir / f"redis-{name}"
    folder.mkdir()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
               "--save", "", "--appendonly", "yes" if durable else "no"]
    with open(folder / "log", "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    log = (folder / "log").read_text()
                    raise RuntimeError(f"redis-server did not start: {log}") from None
                time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0", process.pid
    finally:
        process.terminate()
        process.wait(timeout=15)


def database_tag(database: str) -> str:
    """``sqlite`` or ``postgresql`` for a ``--database`` entry (a name or a URL)."""
    return database.split(":")[0].split("+")[0]


def pinned(cpu: str | None, command: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *command] if cpu is not None else command


@contextmanager
def postgres_database(tag: str) -> Iterator[tuple[str, Any]]:
    """A temporary database, and a function listing the pids of the backends serving it (the
    server runs on this machine: their CPU is counted with ours)."""
    import psycopg  # noqa: PLC0415

    name = f"sso_bench_{os.getpid()}_{tag}"
    admin = PG_ADMIN_URL.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin)
    watcher = psycopg.connect(admin, autocommit=True)

    def backends() -> list[int]:
        rows = watcher.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s",
                               (name,)).fetchall()
        return [int(row[0]) for row in rows]

    try:
        yield parts._replace(path="/" + name).geturl(), backends
    finally:
        watcher.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def our_provider(args: argparse.Namespace, workdir: Path, database: str) -> Iterator[Target]:
    """Seed a fresh database, then run ``sso serve --workers 1`` (granian), with a Redis of its
    own; ``--server gunicorn`` runs the server before it (gunicorn + gevent) instead."""
    with ExitStack() as stack:
        backends = None
        tag = database_tag(database)
        if database == "sqlite":
            database_url = f"sqlite:///{workdir / 'sso.sqlite3'}"
        elif database == "postgresql":
            database_url, backends = stack.enter_context(postgres_database(tag))
        else:
            database_url = database
        redis_url, redis_pid = stack.enter_context(private_redis(workdir, f"ours-{tag}",
                                                                 durable=False))
        port = free_port()
        env = {
            **os.environ,
            "SSO_ISSUER": f"http://127.0.0.1:{port}",
            "SSO_DATABASE_URL": database_url,
            "SSO_REDIS_URL": redis_url,
            "SSO_REDIS_PREFIX": f"ssobench{os.getpid()}:",
            "SSO_KEYS_DIR": str(workdir / "keys"),
            "SSO_INSTANCE_PATH": str(workdir / "instance"),
            "SSO_SECRET_KEY": secrets.token_hex(32),
            "SSO_KEY_ENCRYPTION_KEY": secrets.token_hex(32),
        }
        env.pop("SSO_ACCESS_LOG", None)
        seeded = subprocess.run([sys.executable, str(BENCH / "seed.py")], env=env, cwd=ROOT,
                                check=True, capture_output=True, text=True)
        seed = json.loads(seeded.stdout)
        sso = str(Path(sys.executable).parent / "sso")
        command = pinned(args.server_cpu, [sso, "serve", "--host", "127.0.0.1",
                                           "--port", str(port), "--workers", "1"])
        if args.server == "gunicorn":
            command = pinned(args.server_cpu, gunicorn(port, "sso.wsgi:app"))
        base = f"http://127.0.0.1:{port}"
        process = stack.enter_context(running(command, env,
                                              base + "/.well-known/openid-configuration",
                                              workdir / f"ours-{tag}.log"))
        yield Target(pgid=process.pid, extra_pids=[redis_pid], backends=backends,
            name=f"ours-{tag}", base_url=base, client_id=seed["client_id"],
            client_secret=seed["client_secret"], cookie=seed["cookie"],
            paths={"discovery": "/.well-known/openid-configuration", "jwks": "/jwks.json",
                   "authorize": "/authorize", "token": "/token", "userinfo": "/userinfo",
                   "introspection": "/introspect"},
        )


def install_reference() -> Path:
    """npm-install oidc-provider into the cache (once), next to a copy of server.mjs."""
    folder = CACHE / "reference"
    folder.mkdir(parents=True, exist_ok=True)
    modules = folder / "node_modules"
    if not ((modules / "oidc-provider").is_dir() and (modules / "ioredis").is_dir()):
        (folder / "package.json").write_text(
            '{"name": "sso-bench-reference", "private": true, "type": "module"}\n')
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent",
                        *REFERENCE_PACKAGES], cwd=folder, check=True)
    for name in ("server.mjs", "redis-adapter.mjs"):
        shutil.copy(BENCH / "reference" / name, folder / name)
    return folder


@contextmanager
def reference_provider(args: argparse.Namespace, workdir: Path,
                       durable: bool = False) -> Iterator[Target]:
    """oidc-provider with its in-memory adapter, or (``durable``) with the Redis adapter on a
    redis-server of its own whose CPU is counted with it."""
    folder = install_reference()
    port = free_port()
    secret = secrets.token_urlsafe(32)
    env = {**os.environ, "PORT": str(port), "CLIENT_ID": "bench", "CLIENT_SECRET": secret,
           "REDIRECT_URI": REDIRECT_URI, "NODE_ENV": "production"}
    name = "reference-redis" if durable else "reference"
    base = f"http://127.0.0.1:{port}"
    command = pinned(args.server_cpu, ["node", "server.mjs"])
    with ExitStack() as stack:
        extra = []
        if durable:
            redis_url, redis_pid = stack.enter_context(private_redis(workdir, name, True))
            env.update({"ADAPTER": "redis", "REDIS_URL": redis_url})
            extra.append(redis_pid)
        process = stack.enter_context(running(command, env,
                                              base + "/.well-known/openid-configuration",
                                              workdir / f"{name}.log", cwd=folder))
        target = Target(pgid=process.pid, extra_pids=extra,
            name=name, base_url=base, client_id="bench", client_secret=secret, cookie="",
            paths={"discovery": "/.well-known/openid-configuration", "jwks": "/jwks",
                   "authorize": "/auth", "token": "/token", "userinfo": "/me",
                   "introspection": "/token/introspection"},
        )

        def sign_in() -> None:
            """Its in-memory adapter is an LRU of 1,000 entries, so a workload that mints
            thousands of tokens evicts the session: sign in afresh before each workload."""
            http = requests.Session()
            target.cookie = ""
            target.code_flow(http)
            target.cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies
                                      if c.name.startswith("_session"))

        target.sign_in = sign_in
        yield target


def gunicorn(port: int, target: str) -> list[str]:
    """gunicorn with one gevent worker: the production server before granian, to compare."""
    return [sys.executable, "-m", "gunicorn", "--worker-class", "gevent", "--workers", "1",
            "--bind", f"127.0.0.1:{port}", "--worker-connections", "20000", target]


@contextmanager
def stack_floor(args: argparse.Namespace, workdir: Path) -> Iterator[Target]:
    port = free_port()
    from sso import serving

    command = (gunicorn(port, "bench.floor:app") if args.server == "gunicorn" else
               serving.command("127.0.0.1", port, 1, serving.THREADS, target="bench.floor:app"))
    base = f"http://127.0.0.1:{port}"
    with running(pinned(args.server_cpu, command), dict(os.environ), base + "/",
                 workdir / "floor.log") as process:
        yield Target(pgid=process.pid, name="floor", base_url=base, paths={"hello": "/"},
                     client_id="", client_secret="", cookie="")


@contextmanager
def lean_floor(args: argparse.Namespace, workdir: Path, database: str) -> Iterator[Target]:
    """``bench/lean_floor.py`` on ``database`` (``sqlite`` or ``postgresql``, a scratch one):
    the least a CPython provider with our guarantees costs for the code flow and refresh,
    under the same server command as ours."""
    sys.path.insert(0, str(BENCH))
    import lean_floor as lean  # noqa: PLC0415

    from sso import serving  # noqa: PLC0415

    with ExitStack() as stack:
        backends = None
        tag = database
        if database == "sqlite":
            database_url = f"sqlite:///{workdir / 'lean.sqlite3'}"
        else:
            database_url, backends = stack.enter_context(postgres_database(f"lean_{tag}"))
        seed = lean.seed(database_url, workdir / f"lean-keys-{tag}")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "LEAN_DATABASE": database_url, "LEAN_ISSUER": base,
               "LEAN_KEYS": str(workdir / f"lean-keys-{tag}")}
        command = serving.command("127.0.0.1", port, 1, serving.THREADS,
                                  target="bench.lean_floor:app")
        process = stack.enter_context(running(pinned(args.server_cpu, command), env,
                                              base + "/.well-known/openid-configuration",
                                              workdir / f"lean-{tag}.log"))
        yield Target(pgid=process.pid, backends=backends, name=f"lean-{tag}", base_url=base,
                     client_id=seed["client_id"], client_secret=seed["client_secret"],
                     cookie=seed["cookie"],
                     paths={"authorize": "/authorize", "token": "/token",
                            "userinfo": "/userinfo"})


# Workloads.


def wrk(args: argparse.Namespace, target: Target, script: str, env: dict[str, str],
        duration: float) -> dict[str, Any]:
    command = pinned(args.load_cpu, [
        "wrk", "-t", str(args.threads), "-c", str(args.connections),
        "-d", f"{max(1, round(duration))}s", "--timeout", "10s", "-s", str(LUA / script),
        target.base_url,
    ])
    full_env = {**os.environ, "BENCH_LUA_DIR": str(LUA), "BENCH_THREADS": str(args.threads),
                "BENCH_RUN_ID": secrets.token_hex(4), **env}
    done = subprocess.run(command, env=full_env, capture_output=True, text=True, check=True)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])  # type: ignore[no-any-return]
    raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")


def workload_env(args: argparse.Namespace, target: Target, workload: str,
                 workdir: Path) -> tuple[str, dict[str, str]]:
    paths = target.paths
    if target.sign_in is not None:
        target.sign_in()
    if workload in ("discovery", "jwks", "hello"):
        return "simple.lua", {"BENCH_PATH": paths[workload]}
    if workload == "client_credentials":
        return "simple.lua", {
            "BENCH_METHOD": "POST", "BENCH_PATH": paths["token"], "BENCH_AUTH": target.basic,
            "BENCH_BODY": f"grant_type=client_credentials&scope={SERVICE_SCOPE}",
        }
    if workload == "introspection":
        access_token = target.code_flow()["access_token"]
        return "simple.lua", {
            "BENCH_METHOD": "POST", "BENCH_PATH": paths["introspection"],
            "BENCH_AUTH": target.basic,
            "BENCH_BODY": f"token={quote(access_token, safe='')}&token_type_hint=access_token",
        }
    if workload == "code_flow":
        return "code_flow.lua", {
            "BENCH_AUTHORIZE": target.authorize_path(), "BENCH_TOKEN_PATH": paths["token"],
            "BENCH_USERINFO_PATH": paths["userinfo"], "BENCH_COOKIE": target.cookie,
            "BENCH_AUTH": target.basic, "BENCH_REDIRECT_URI": quote(REDIRECT_URI, safe=""),
            "BENCH_VERIFIER": target.verifier,
        }
    if workload == "refresh":
        # One chain per connection, each seeded by a real code flow.
        chains = [target.code_flow()["refresh_token"] for _ in range(args.connections)]
        path = workdir / f"refresh-{target.name}-{secrets.token_hex(3)}.txt"
        path.write_text("\n".join(chains) + "\n")
        return "refresh.lua", {"BENCH_TOKEN_PATH": paths["token"],
                               "BENCH_AUTH": target.basic, "BENCH_REFRESH_FILE": str(path)}
    raise ValueError(workload)


def measure(args: argparse.Namespace, target: Target, workload: str,
            workdir: Path) -> dict[str, Any]:
    if args.warmup > 0:
        script, env = workload_env(args, target, workload, workdir)
        wrk(args, target, script, env, args.warmup)
    script, env = workload_env(args, target, workload, workdir)
    cpu_before = target.cpu()
    raw = wrk(args, target, script, env, args.duration)
    cpu_after = target.cpu()
    cpu = cpu_spent(cpu_before, cpu_after)
    database_cpu = cpu_spent(cpu_before, cpu_after, target.database_pids)
    seconds = raw["duration_us"] / 1e6
    flows = raw["flows"] if workload in ("code_flow", "refresh") else raw["requests"]
    result = {
        "rate": flows / seconds,
        # Per second of the server's own CPU time: what one whole core would serve, which
        # holds up on a machine whose cores other work is using too.
        "rate_per_cpu_s": flows / cpu if cpu > 0 else 0.0,
        "server_cpu_s": cpu,
        # CPU-µs of the server (with its Redis and database backends) per unit.
        "cpu_us_per_unit": cpu * 1e6 / flows if flows else 0.0,
        # Of it, the PostgreSQL backends serving the target's database (0 on SQLite).
        "database_cpu_us_per_unit": database_cpu * 1e6 / flows if flows else 0.0,
        "unit": "flows/s" if workload == "code_flow" else "req/s",
        "requests_per_s": raw["requests"] / seconds,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": raw["status_errors"] + raw["socket_errors"] + raw["failures"],
    }
    print(f"  {target.name:15} {workload:18} {result['rate']:9.0f} {result['unit']:8}"
          f" ({result['cpu_us_per_unit']:7.0f} CPU-µs each)"
          f" p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms"
          f"  errors {result['errors']}", file=sys.stderr, flush=True)
    return result


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate (the upper one of an even count)."""
    ordered = sorted(runs, key=lambda r: r["rate"])
    return ordered[len(ordered) // 2]


def measure_in_turns(args: argparse.Namespace, targets: dict[str, Target], workload: str,
                     workdir: Path) -> dict[str, dict[str, Any]]:
    """Each target's median run of ``workload`` over ``--repeat`` runs, the targets taking
    turns run by run (A B A B, not A A B B): the machine is shared, its speed drifts over
    minutes, and runs taken in turns meet the same drift, so the ratios move less."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    for _ in range(args.repeat):
        for name, target in targets.items():
            runs[name].append(measure(args, target, workload, workdir))
    return {name: median_run(found) for name, found in runs.items()}


# Report.


def table(results: dict[str, dict[str, Any]], workloads: list[str]) -> str:
    """One row per workload and target, then the ratios of each of our databases to each
    reference (per CPU-second: the reference's CPU-µs per unit over ours)."""
    lines = [f"{'workload':18} | {'target':17} | {'CPU-µs/unit':>11} | {'of it DB':>8} | "
             f"{'/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | errors"]
    for workload in [*workloads, "hello"]:
        for name, by_workload in results.items():
            result = by_workload.get(workload)
            if result:
                database = result.get("database_cpu_us_per_unit") or 0.0
                lines.append(f"{workload:18} | {name:17} | {result['cpu_us_per_unit']:11.0f} | "
                             f"{f'{database:.0f}' if database else '':>8} | "
                             f"{result['rate']:8.0f} | {result['p50_ms']:7.2f} | "
                             f"{result['p99_ms']:7.2f} | {result['errors']}")
    found = ratios(results)
    if found:
        lines += ["", "ratio per CPU-second (above 1.00x: ours serves more per core)"]
        for workload, row in found.items():
            lines.append(f"{workload:18} | " + " | ".join(
                f"{pair} {value:5.2f}x" for pair, value in row.items()))
    lines.append("CPU-µs: the server's processes, its own redis-server and, on PostgreSQL, the "
                 "backends serving its database (of it DB: those backends' share).\ncode_flow "
                 "and refresh count flows (3 and 1 requests); the rest count requests.")
    return "\n".join(lines)


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """workload -> {"ours-sqlite/reference": ratio, ...}: the reference's CPU per unit over
    ours, so above 1 means ours is cheaper."""
    found: dict[str, dict[str, float]] = {}
    ours = [name for name in results if name.startswith(("ours", "lean"))]
    references = [name for name in results if name.startswith("reference")]
    for workload in WORKLOADS:
        for mine in ours:
            for theirs in references:
                a, b = results[mine].get(workload), results[theirs].get(workload)
                if a and b and a["cpu_us_per_unit"]:
                    found.setdefault(workload, {})[f"{mine}/{theirs}"] = round(
                        b["cpu_us_per_unit"] / a["cpu_us_per_unit"], 3)
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per workload")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up first")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated, from {', '.join(WORKLOADS)}")
    parser.add_argument("--database", default="sqlite,postgresql",
                        help="comma-separated: sqlite (a temp file), postgresql (a temp "
                             "database on SSO_TEST_DATABASE_URL's server) or an SQLAlchemy URL; "
                             "ours runs on each")
    parser.add_argument("--targets", default="ours,reference,reference-redis,floor,lean",
                        help="comma-separated, from ours, reference (in-memory adapter), "
                             "reference-redis (its Redis adapter, durable), floor, lean (the "
                             "Python floor of the code flow and refresh, on each database)")
    parser.add_argument("--server", choices=["granian", "gunicorn"], default="granian",
                        help="our server and the floor's: sso serve (granian, the production "
                             "server) or gunicorn + gevent (the one before it, to compare)")
    parser.add_argument("--server-cpu", default="0", help="core for the server ('' = any)")
    parser.add_argument("--load-cpu", default="1", help="core for wrk ('' = any)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per workload and target, the targets taking turns run "
                             "by run; the median is reported")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    args.server_cpu = args.server_cpu or None
    args.load_cpu = args.load_cpu or None
    unknown = set(args.workloads.split(",")) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Stop the servers on SIGTERM too, not only on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install -y wrk")
    workloads = args.workloads.split(",")
    targets = args.targets.split(",")
    if any(name.startswith("reference") for name in targets) and not shutil.which("node"):
        sys.exit("node is missing: apt-get install -y nodejs npm")
    if not shutil.which("redis-server"):
        sys.exit("redis-server is missing: apt-get install -y redis-server")
    starters: dict[str, Any] = {}
    for name in targets:
        if name == "ours":
            for database in args.database.split(","):
                starters[f"ours-{database_tag(database)}"] = functools.partial(
                    our_provider, database=database)
        elif name in ("reference", "reference-redis"):
            starters[name] = functools.partial(reference_provider,
                                               durable=name == "reference-redis")
        elif name == "floor":
            starters[name] = stack_floor
        elif name == "lean":
            # On its own scratch database: "sqlite" or "postgresql", not a URL of ours.
            for database in args.database.split(","):
                if database in ("sqlite", "postgresql"):
                    starters[f"lean-{database}"] = functools.partial(lean_floor,
                                                                     database=database)
        else:
            sys.exit(f"unknown target {name}")
    results: dict[str, dict[str, Any]] = {name: {} for name in starters}
    with tempfile.TemporaryDirectory(prefix="sso-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        # Every server runs (idle but for the one measured) so that the targets take turns
        # per workload: a burst of load from elsewhere on the machine then hits both alike.
        running_targets = {name: stack.enter_context(start(args, workdir))
                           for name, start in starters.items()}
        for workload in workloads:
            measured = {name: target for name, target in running_targets.items()
                        if name != "floor" and (not name.startswith("lean")
                                                or workload in LEAN_WORKLOADS)}
            for name, result in measure_in_turns(args, measured, workload, workdir).items():
                results[name][workload] = result
        if "floor" in starters:
            results["floor"]["hello"] = measure_in_turns(
                args, {"floor": running_targets["floor"]}, "hello", workdir)["floor"]
    report = {
        "settings": {"duration_s": args.duration, "connections": args.connections,
                     "wrk_threads": args.threads, "server": args.server,
                     "databases": [d.split(":")[0] for d in args.database.split(",")],
                     "server_cpu": args.server_cpu, "load_cpu": args.load_cpu,
                     "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "results": results,
        "ratios": ratios(results),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(table(results, workloads))


if __name__ == "__main__":
    main()
