"""Real processes for the cluster tests and bench/cluster.py: provider nodes, HAProxy, Redis.

Everything listens on loopback ports picked free at start and is stopped by its own process
id (a node by its process group: the server's master and its worker). Nothing here touches the
shared PostgreSQL or Redis beyond a database and a key prefix of its own.

* :class:`Node`: ``sso serve`` (granian, the production server command).
* :class:`HAProxy`: Debian's ``haproxy`` with a generated configuration: round robin over the
  nodes, an active health check of ``/readyz`` every 500 ms with a 2 s timeout (out after 2
  failures, back after 2 successes), requests that cannot connect re-dispatched to another
  node, a CSV stats page, and two headers for tests: ``X-SSO-Node: n2`` pins a request to
  one node, and every answer says which node served it in ``X-SSO-Served-By``.
* :class:`RedisServer`, :class:`Sentinel`: ``redis-server`` and ``redis-sentinel``.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parents[2]
SSO = Path(sys.executable).with_name("sso")
PIN_HEADER = "X-SSO-Node"
SERVED_BY = "X-SSO-Served-By"
PASSWORD = "Correct-horse-9-battery"
REDIRECT_URI = "https://erp.example.com/callback"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``check()`` until it returns something truthy; a bound against hanging."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as error:  # noqa: BLE001 - retried until the deadline
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"{what} within {timeout} s (last error: {last_error!r})")


def _stop_group(process: subprocess.Popen[Any], sig: int = signal.SIGTERM,
                timeout: float = 20) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


# Stores.

@dataclass
class RedisServer:
    """A redis-server of our own (the shared one must never be stopped)."""

    folder: Path
    port: int = field(default_factory=free_port)
    extra: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.folder), *self.extra],
            stdout=(self.folder / f"redis-{self.port}.log").open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        wait_until(client.ping, 15, f"redis-server on {self.port} answers")
        return self

    def kill(self) -> None:
        if self.process is not None:
            _stop_group(self.process, signal.SIGKILL)

    def stop(self) -> None:
        if self.process is not None:
            _stop_group(self.process)


@dataclass
class Sentinel:
    """One redis-sentinel watching ``master_name`` at ``master_port``, quick to decide."""

    folder: Path
    master_port: int
    master_name: str = "sso"
    down_after_ms: int = 1000
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Sentinel:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / f"sentinel-{self.port}.conf"
        config.write_text("\n".join([
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.folder}",
            f"sentinel monitor {self.master_name} 127.0.0.1 {self.master_port} 1",
            f"sentinel down-after-milliseconds {self.master_name} {self.down_after_ms}",
            f"sentinel failover-timeout {self.master_name} 10000",
            f"sentinel parallel-syncs {self.master_name} 1",
            "",
        ]))
        self.process = subprocess.Popen(
            ["redis-sentinel", str(config)],
            stdout=(self.folder / f"sentinel-{self.port}.log").open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        wait_until(lambda: client.sentinel_master(self.master_name), 15,
                   f"redis-sentinel on {self.port} watches {self.master_name}")
        return self

    def master(self) -> tuple[str, int]:
        info = redis.Redis(port=self.port, socket_timeout=1).sentinel_master(self.master_name)
        return str(info["ip"]), int(info["port"])

    def stop(self) -> None:
        if self.process is not None:
            _stop_group(self.process)


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A database of our own on the shared server, dropped afterwards."""
    name = f"sso_cluster_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# The provider.

def node_environment(folder: Path, issuer: str, database_url: str,
                     redis_settings: Mapping[str, str], **extra: str) -> dict[str, str]:
    """The ``SSO_*`` environment every node shares (one secret, one database, one Redis).

    The signing keys live in the database, encrypted with the one key-encryption key; the
    keys folder is only where an import would read from.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("SSO_")}
    env.update({
        "SSO_ISSUER": issuer,
        "SSO_SECRET_KEY": secrets.token_hex(32),
        "SSO_KEY_ENCRYPTION_KEY": secrets.token_hex(32),
        "SSO_DATABASE_URL": database_url,
        "SSO_REDIS_PREFIX": f"ssocluster:{secrets.token_hex(4)}:",
        "SSO_KEYS_DIR": str(folder / "keys"),
        "SSO_INSTANCE_PATH": str(folder / "instance"),
        "SSO_ARGON2_MEMORY_KIB": str(8 * 1024),
        "SSO_ARGON2_TIME_COST": "1",
        # One hop: HAProxy, which adds X-Forwarded-For.
        "SSO_TRUSTED_PROXIES": "1",
        # Many sign-ins from one loopback address in a test: keep the counters out of the way.
        "SSO_RATE_LIMIT_LOGIN_IP": "100000/60",
        "SSO_RATE_LIMIT_QR_CREATE_IP": "100000/60",
        "SSO_CAPTCHA_AFTER": "100000",
        **{f"SSO_{k}": v for k, v in redis_settings.items()},
        **extra,
    })
    return env


def sso(env: Mapping[str, str], *args: str, check: bool = True) -> str:
    """Run an ``sso`` command with a node's environment."""
    done = subprocess.run([str(SSO), *args], env=dict(env), capture_output=True, text=True,
                          timeout=120)
    if check and done.returncode != 0:
        raise AssertionError(f"sso {' '.join(args)}: {done.stdout}{done.stderr}")
    return done.stdout


def seed(env: Mapping[str, str]) -> dict[str, str]:
    """Migrate (once, as an upgrade does), create keys, a user and a client: the data the
    nodes share."""
    code = (
        "import json, sys\n"
        "from sso import create_app, migrate\n"
        "from sso.accounts.service import create_user\n"
        "from sso.extensions import db\n"
        "from sso.oidc.clients import create_client\n"
        "app = create_app()\n"
        "migrate.upgrade(app)\n"
        "with app.app_context():\n"
        "    app.extensions['sso_keys'].ensure()\n"
        f"    user = create_user('alice', password={PASSWORD!r}, email='alice@example.com',"
        " name='Alice')\n"
        f"    client, secret = create_client('ERP', [{REDIRECT_URI!r}], first_party=True,"
        " grant_types=['authorization_code', 'refresh_token', 'client_credentials'],"
        " scope='openid profile email offline_access api')\n"
        "    db.session.commit()\n"
        "    json.dump({'subject': user.subject, 'client_id': client.client_id,"
        " 'secret': secret}, sys.stdout)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=dict(env), capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    if done.returncode != 0:
        raise AssertionError(f"seeding failed: {done.stderr[-3000:]}")
    import json  # noqa: PLC0415

    return json.loads(done.stdout)  # type: ignore[no-any-return]


@dataclass
class Node:
    """One provider node: ``sso serve`` (granian) on a loopback port."""

    name: str
    env: dict[str, str]
    folder: Path
    workers: int = 1
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.folder / f"{self.name}-access.log"

    def start(self) -> Node:
        self.folder.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "SSO_ACCESS_LOG": str(self.access_log)}
        self.process = subprocess.Popen(
            [str(SSO), "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(self.workers)],
            env=env, cwd=self.folder, stdout=subprocess.DEVNULL,
            stderr=(self.folder / f"{self.name}.log").open("wb"), start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 90) -> Node:
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                log = (self.folder / f"{self.name}.log").read_text(errors="replace")
                raise RuntimeError(f"{self.name} exited: {log[-2000:]}")
            return requests.get(f"{self.url}/readyz", timeout=2).status_code == 200

        try:
            wait_until(ready, timeout, f"{self.name} is ready", interval=0.2)
        except RuntimeError as error:
            raise AssertionError(str(error)) from None
        return self

    def pids(self) -> list[int]:
        """The server's master and its workers (the process group)."""
        if self.process is None:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) == self.process.pid:
                        found.append(int(entry.name))
                except (ProcessLookupError, PermissionError):
                    continue
        return found

    def kill(self) -> None:
        """Die at once, master and workers, as a crashed machine would; return when every
        one of its processes is gone."""
        if self.process is None:
            return
        pids = self.pids()
        _stop_group(self.process, signal.SIGKILL)
        wait_until(lambda: not any(_alive(pid) for pid in pids), 10, f"{self.name} is gone",
                   interval=0.005)

    def stop(self) -> None:
        if self.process is not None:
            _stop_group(self.process)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


# The load balancer.

HAPROXY_CONFIG = """\
global
    maxconn 4096
defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 5s
    # A node busy at full load still answers /readyz within this; a dead one fails at once.
    timeout check 2s
    # A request that cannot connect to its node is sent to another one.
    option redispatch
    retries 3
frontend provider
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    balance roundrobin
    option forwardfor
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter {inter}ms fastinter {inter}ms downinter {inter}ms fall 2 rise 2
{pins}
    http-response set-header {served_by} %s
{servers}
listen stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
"""


@dataclass
class HAProxy:
    nodes: list[Node]
    folder: Path
    inter_ms: int = 500
    port: int = field(default_factory=free_port)
    stats_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        pins = "\n".join(f"    use-server {n.name} if {{ req.hdr({PIN_HEADER}) -m str {n.name} }}"
                         for n in self.nodes)
        servers = "\n".join(f"    server {n.name} 127.0.0.1:{n.port} check" for n in self.nodes)
        return HAPROXY_CONFIG.format(port=self.port, stats_port=self.stats_port,
                                     inter=self.inter_ms, pins=pins, servers=servers,
                                     served_by=SERVED_BY)

    def start(self) -> HAProxy:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "haproxy.cfg"
        path.write_text(self.config())
        checked = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True,
                                 text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        self.process = subprocess.Popen(
            [binary, "-db", "-f", str(path)], stdout=subprocess.DEVNULL,
            stderr=(self.folder / "haproxy.log").open("wb"), start_new_session=True)
        return self

    def states(self) -> dict[str, str]:
        """Each node's state by HAProxy's health check: UP, DOWN, ..."""
        text = requests.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=2).text
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {row["svname"]: row["status"] for row in rows if row["pxname"] == "nodes"
                and row["svname"] not in ("FRONTEND", "BACKEND")}

    def wait_states(self, expected: Mapping[str, str], timeout: float = 30) -> None:
        def matches() -> bool:
            states = self.states()
            return all(states.get(name, "").startswith(state)
                       for name, state in expected.items())

        wait_until(matches, timeout, f"HAProxy sees {dict(expected)}", interval=0.1)

    def stop(self) -> None:
        if self.process is not None:
            _stop_group(self.process)
