"""Scan to sign in under load, on the production server command (``sso serve``: granian, a
thread per waiting desktop).

Measures, against a fresh provider on a free port with a throwaway database (PostgreSQL as in
production when the local server answers, else SQLite):

1. QR sessions created per second (``POST /qr/sessions`` from many keep-alive connections);
2. how many desktops can wait at once on ``/qr/sessions/{id}/events``, and the workers'
   memory per waiting desktop;
3. with all of them waiting for ``--hold`` seconds, the workers' CPU: what the heartbeats
   (and the state's rereads) of waiting desktops cost, per heartbeat and as a share of a core;
4. with all of them still waiting, the latency from a phone's ``POST /qr/s/{id}/approve``
   being sent to the waiting desktop receiving ``approved`` (p50/p99 over ``--samples``
   codes).

    .venv/bin/python bench/qr_waiters.py --waiters 10000 --workers 2

The clients are raw asyncio sockets in this process (one per waiting desktop), so the figures
include this machine running both sides. The desktops connect ``--batch`` at a time; when a
batch is not all connected within 60 s (a server that stopped taking them), the run ends
there: it prints what it reached (``gave_up``, the desktops connected, each worker's threads)
and exits with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "Waiting-desktops-9-long"  # the policy refuses the username in it


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fresh_database(admin_url: str | None, folder: Path) -> tuple[str, str | None]:
    """A new PostgreSQL database (production's) when the server answers, else SQLite.

    Returns the URL and the PostgreSQL database's name (to drop afterwards)."""
    if admin_url:
        import psycopg

        name = f"qr_bench_{secrets.token_hex(4)}"
        try:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=2) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.Error as exc:
            print(f"PostgreSQL unavailable ({exc}); using SQLite", file=sys.stderr)
        else:
            base = admin_url.rsplit("/", 1)[0]
            return f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1), name
    return f"sqlite:///{folder / 'sso.sqlite3'}", None


def drop_database(admin_url: str | None, name: str | None) -> None:
    if admin_url and name:
        import psycopg

        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare(folder: Path, port: int, redis_url: str, prefix: str, database_url: str,
            heartbeat: float) -> dict[str, str]:
    """Migrate a fresh database, add a user, and return the server's environment."""
    from sso import create_app, migrate

    config: dict[str, Any] = {
        "ISSUER": f"http://127.0.0.1:{port}",
        "SECRET_KEY": secrets.token_hex(32),
        "KEY_ENCRYPTION_KEY": secrets.token_hex(32),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": prefix,
        "KEYS_DIR": str(folder / "keys"),
        "INSTANCE_PATH": str(folder / "instance"),
        # Codes must outlive the run; creation from one address and approvals by the one
        # bench user (one per sample) must not be rate-limited.
        "QR_TTL": 1800,
        "QR_HEARTBEAT": heartbeat,
        "RATE_LIMIT_QR_CREATE_IP": "100000000/60",
        "RATE_LIMIT_QR_APPROVE_USER": "100000/60",
        "RATE_LIMIT_LOGIN_IP": "100000/60",
    }
    app = create_app(config)
    migrate.upgrade(app)
    with app.app_context():
        from sso.accounts.service import create_user
        from sso.extensions import db

        create_user("bench", password=PASSWORD, email="bench@example.com", name="Bench")
        db.session.commit()
    return {**os.environ, **{f"SSO_{k}": str(v) for k, v in config.items()}}


def start_server(env: dict[str, str], port: int, workers: int) -> subprocess.Popen[bytes]:
    sso = str(Path(sys.executable).with_name("sso"))
    process = subprocess.Popen(
        [sso, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/jwks.json", timeout=2).ok:
                return process
        except requests.RequestException:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start")


def workers_of(master: int) -> list[Path]:
    """The /proc folders of ``master``'s child processes (granian's workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                found.append(stat.parent)
        except (OSError, IndexError, ValueError):
            continue
    return found


def worker_status(master: int, field: str) -> list[int]:
    """One number field of ``/proc/PID/status`` (``VmRSS``, ``Threads``) for each of
    ``master``'s workers still alive, in the order of :func:`workers_of`."""
    values = []
    for folder in workers_of(master):
        try:
            status = (folder / "status").read_text()
        except OSError:
            continue
        found = re.search(rf"^{field}:\s+(\d+)", status, re.MULTILINE)
        values.append(int(found.group(1)) if found else 0)
    return values


def worker_rss_kib(master: int) -> int:
    """The resident memory of ``master``'s workers together, in KiB."""
    return sum(worker_status(master, "VmRSS"))


def worker_threads(master: int) -> list[int]:
    """The number of threads of each of ``master``'s workers (a thread per open request)."""
    return sorted(worker_status(master, "Threads"))


def worker_cpu_seconds(master: int) -> float:
    """User and system CPU of ``master``'s workers so far."""
    ticks = 0
    for folder in workers_of(master):
        try:
            fields = (folder / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# A minimal HTTP/1.1 client on asyncio streams.


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def send(self, method: str, path: str, headers: dict[str, str],
                   body: bytes = b"") -> None:
        assert self.writer is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}",
                 f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()

    async def head(self) -> tuple[int, list[tuple[str, str]]]:
        assert self.reader is not None
        status = int((await self.reader.readline()).split()[1])
        headers = []
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers.append((name.strip().lower(), value.strip()))
        return status, headers

    async def request(self, method: str, path: str, headers: dict[str, str],
                      body: bytes = b"") -> tuple[int, list[tuple[str, str]], bytes]:
        await self.send(method, path, headers, body)
        status, response_headers = await self.head()
        length = int(dict(response_headers).get("content-length", "0"))
        assert self.reader is not None
        return status, response_headers, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def cookies_of(headers: list[tuple[str, str]]) -> dict[str, str]:
    found = {}
    for name, value in headers:
        if name == "set-cookie":
            key, _, rest = value.partition("=")
            found[key] = rest.split(";", 1)[0]
    return found


async def desktop_identity(port: int) -> tuple[str, str]:
    """The flow cookie and CSRF token a desktop gets from the QR tab."""
    connection = Connection(port)
    await connection.open()
    _status, headers, body = await connection.request("GET", "/qr/login", {})
    connection.close()
    csrf = re.search(rb'data-csrf="([^"]+)"', body)
    assert csrf, "no CSRF token on the QR tab"
    return cookies_of(headers)["sso_flow"], csrf.group(1).decode()


async def create_codes(port: int, flow_cookie: str, csrf: str, seconds: float | None,
                       count: int | None, connections: int) -> tuple[list[tuple[str, str]], float]:
    """Create codes from ``connections`` keep-alive connections, for ``seconds`` or until
    ``count`` exist; return (id, secret) pairs and the elapsed time."""
    codes: list[tuple[str, str]] = []
    started = time.perf_counter()
    headers = {"Cookie": f"sso_flow={flow_cookie}", "X-CSRF-Token": csrf,
               "Content-Type": "application/x-www-form-urlencoded"}

    def done() -> bool:
        if seconds is not None:
            return time.perf_counter() - started >= seconds
        return len(codes) >= (count or 0)

    async def loop() -> None:
        connection = Connection(port)
        await connection.open()
        while not done():
            status, response_headers, body = await connection.request(
                "POST", "/qr/sessions", headers, b"flow=")
            if status != 201:
                raise SystemExit(f"creating a code failed: {status} {body[:200]!r}")
            codes.append((json.loads(body)["id"], cookies_of(response_headers)["sso_qr"]))
            if dict(response_headers).get("connection", "").lower() == "close":
                connection.close()
                connection = Connection(port)
                await connection.open()
        connection.close()

    await asyncio.gather(*(loop() for _ in range(connections)))
    return codes, time.perf_counter() - started


class NotConnected(Exception):
    """A batch of desktops was not all connected (its first event heard, or failed) in time."""


class Waiters:
    """Desktops waiting on their event streams; records when ``approved`` arrives."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ready = 0
        self.failed = 0
        self.heartbeats = 0
        self.approved_at: dict[str, float] = {}
        self.signals: dict[str, threading.Event] = {}
        self.tasks: list[asyncio.Task[None]] = []

    async def wait_on(self, qr_id: str, secret: str, first: asyncio.Event) -> None:
        connection = Connection(self.port)
        try:
            await connection.open()
            await connection.send("GET", f"/qr/sessions/{qr_id}/events",
                                  {"Cookie": f"sso_qr={secret}", "Accept": "text/event-stream"})
            status, _headers = await connection.head()
            if status != 200:
                raise OSError(f"status {status}")
            assert connection.reader is not None
            seen_first = False
            while line := await connection.reader.readline():
                if line.startswith(b": ping"):
                    self.heartbeats += 1
                if not line.startswith(b"data: "):
                    continue
                state = json.loads(line[6:])["state"]
                if not seen_first:
                    seen_first = True
                    self.ready += 1
                    first.set()
                if state == "approved":
                    self.approved_at[qr_id] = time.perf_counter()
                    if qr_id in self.signals:
                        self.signals[qr_id].set()
                    return
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.failed += 1
            first.set()
        finally:
            connection.close()

    async def open_all(self, codes: list[tuple[str, str]], batch: int,
                       timeout: float = 60) -> None:
        """Connect the desktops ``batch`` at a time, each batch all heard from before the
        next; :class:`NotConnected` if a batch is not within ``timeout`` seconds."""
        for start in range(0, len(codes), batch):
            firsts = []
            for qr_id, secret in codes[start:start + batch]:
                first = asyncio.Event()
                firsts.append(first)
                self.tasks.append(asyncio.create_task(self.wait_on(qr_id, secret, first)))
            try:
                await asyncio.wait_for(asyncio.gather(*(f.wait() for f in firsts)),
                                       timeout=timeout)
            except TimeoutError:
                raise NotConnected(
                    f"the desktops {start + 1} to {start + len(firsts)} were not all connected"
                    f" within {timeout:g} s: {self.ready} connected, {self.failed} failed"
                ) from None


def phone_approvals(port: int, sample: list[str], waiters: Waiters,
                    loop: asyncio.AbstractEventLoop) -> dict[str, list[float]]:
    """Sign a phone in, then scan and approve each sampled code; time approve → event."""
    base = f"http://127.0.0.1:{port}"
    phone = requests.Session()
    login = phone.get(f"{base}/login", timeout=30)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
    phone.post(f"{base}/login", data={"csrf_token": csrf, "username": "bench",
                                      "password": PASSWORD}, allow_redirects=False, timeout=30)
    latencies, requests_ms = [], []
    for qr_id in sample:
        page = phone.get(f"{base}/qr/s/{qr_id}", timeout=30)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        if page.status_code != 200 or token is None:
            raise SystemExit(f"the phone could not scan: {page.status_code}")
        arrived = threading.Event()
        waiters.signals[qr_id] = arrived
        sent = time.perf_counter()
        response = phone.post(f"{base}/qr/s/{qr_id}/approve",
                              data={"csrf_token": token.group(1)}, timeout=30)
        answered = time.perf_counter()
        if response.status_code != 200:
            raise SystemExit(f"approve failed: {response.status_code}")
        if not arrived.wait(timeout=30):
            raise SystemExit(f"the desktop of {qr_id} never heard 'approved'")
        latencies.append((waiters.approved_at[qr_id] - sent) * 1000)
        requests_ms.append((answered - sent) * 1000)
    return {"approve_to_event_ms": latencies, "approve_request_ms": requests_ms}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


async def run(args: argparse.Namespace, port: int, master: int) -> dict[str, Any]:
    flow_cookie, csrf = await desktop_identity(port)
    results: dict[str, Any] = {"workers": args.workers, "cores": os.cpu_count(),
                               "heartbeat_s": args.heartbeat}

    created, elapsed = await create_codes(port, flow_cookie, csrf, args.create_seconds, None,
                                          args.connections)
    results["codes_created_per_second"] = round(len(created) / elapsed, 1)
    if len(created) < args.waiters + args.samples:
        more, _ = await create_codes(port, flow_cookie, csrf, None,
                                     args.waiters + args.samples - len(created),
                                     args.connections)
        created += more
    codes = created[:args.waiters]

    await asyncio.sleep(2)
    before = worker_rss_kib(master)
    waiters = Waiters(port)
    started = time.perf_counter()
    try:
        await waiters.open_all(codes, args.batch)
    except NotConnected as gave_up:
        results["gave_up"] = str(gave_up)
    results["waiters_connected"] = waiters.ready
    results["waiters_failed"] = waiters.failed
    results["seconds_to_connect_all"] = round(time.perf_counter() - started, 1)
    results["worker_threads"] = worker_threads(master)
    if "gave_up" in results:
        for task in waiters.tasks:
            task.cancel()
        return results
    await asyncio.sleep(3)
    after = worker_rss_kib(master)
    results["worker_rss_mib_before"] = round(before / 1024, 1)
    results["worker_rss_mib_waiting"] = round(after / 1024, 1)
    results["kib_per_waiter"] = round((after - before) / max(waiters.ready, 1), 1)

    if args.hold > 0:
        heartbeats, cpu, held = waiters.heartbeats, worker_cpu_seconds(master), time.perf_counter()
        await asyncio.sleep(args.hold)
        held = time.perf_counter() - held
        heard = waiters.heartbeats - heartbeats
        spent = worker_cpu_seconds(master) - cpu
        results["hold_s"] = round(held, 1)
        results["heartbeats_per_second"] = round(heard / held, 1)
        results["workers_cpu_share_while_waiting"] = round(spent / held, 3)
        results["workers_cpu_us_per_heartbeat"] = round(spent / max(heard, 1) * 1e6, 1)
        results["waiters_failed_while_holding"] = waiters.failed - results["waiters_failed"]

    sample = [qr_id for qr_id, _ in codes[:: max(len(codes) // args.samples, 1)]][:args.samples]
    loop = asyncio.get_running_loop()
    timings = await loop.run_in_executor(None, phone_approvals, port, sample, waiters, loop)
    latencies = timings["approve_to_event_ms"]
    results["latency_samples"] = len(latencies)
    results["approve_to_event_ms"] = {
        "p50": round(statistics.median(latencies), 1),
        "p99": round(percentile(latencies, 0.99), 1),
        "max": round(max(latencies), 1),
    }
    results["approve_request_ms_p50"] = round(statistics.median(timings["approve_request_ms"]), 1)
    results["still_waiting_after"] = waiters.ready - len(waiters.approved_at)
    for task in waiters.tasks:
        task.cancel()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waiters", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--create-seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32,
                        help="keep-alive connections creating codes")
    parser.add_argument("--batch", type=int, default=250, help="waiters connecting at once")
    parser.add_argument("--heartbeat", type=float, default=15.0,
                        help="SSO_QR_HEARTBEAT of the server (s)")
    parser.add_argument("--hold", type=float, default=60.0,
                        help="seconds all desktops wait, heartbeats only, before the approvals"
                             " (the workers' CPU is measured over them); 0 to skip")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="server on which to create a throwaway database; '' for SQLite")
    parser.add_argument("--redis-url", default=os.environ.get("SSO_REDIS_URL",
                                                              "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="qr-bench-"))
    port = free_port()
    prefix = f"qrbench:{secrets.token_hex(4)}:"
    database_url, database = fresh_database(args.postgres or None, folder)
    env = prepare(folder, port, args.redis_url, prefix, database_url, args.heartbeat)
    server = start_server(env, port, args.workers)
    try:
        results = asyncio.run(run(args, port, server.pid))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        client = redis.Redis.from_url(args.redis_url)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start:start + 1000])
        shutil.rmtree(folder, ignore_errors=True)
        drop_database(args.postgres or None, database)
    results["database"] = database_url.split(":", 1)[0]
    print(json.dumps(results, indent=2))
    if "gave_up" in results:
        raise SystemExit(f"gave up: {results['gave_up']}")


if __name__ == "__main__":
    main()
