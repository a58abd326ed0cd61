"""Operations figures: what a /metrics scrape costs, and how soon every node serves the JWKS of
a rotation done elsewhere.

Starts two providers with their production command (``sso serve``: granian, two
workers each) on loopback, sharing one database (SQLite file, or ``--database``) and the Redis
of ``SSO_REDIS_URL`` (default 127.0.0.1:6379) under a prefix of their own. Then:

1. sends 1,000 discovery requests to node A (so the metrics have something to add up), and
   times ``--scrapes`` scrapes of ``/metrics`` on node A (milliseconds: median, p90, max);
2. ``--rotations`` times: runs ``sso keys rotate`` and measures, from the command's exit, how
   long until node B's ``/jwks.json`` shows the promoted keys as its active ones (the keys it
   signs with), polling every 10 ms.

Run: ``.venv/bin/python bench/operations.py`` (about a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SSO = str(Path(sys.executable).with_name("sso"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str, **headers: str) -> bytes:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback only
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        return bytes(answer.read())


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server at {url} ended")
        try:
            get(url + "/.well-known/openid-configuration")
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"no answer from {url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", help="SQLAlchemy URL (default: a SQLite file)")
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--rotations", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sso-ops-bench-") as tmp:
        token = secrets.token_urlsafe(24)
        env = {**os.environ,
               "SSO_DATABASE_URL": args.database or f"sqlite:///{tmp}/sso.sqlite3",
               "SSO_REDIS_URL": os.environ.get("SSO_REDIS_URL", "redis://127.0.0.1:6379/0"),
               "SSO_REDIS_PREFIX": f"ssoops{os.getpid()}:",
               "SSO_SECRET_KEY": secrets.token_hex(32),
               "SSO_KEY_ENCRYPTION_KEY": secrets.token_hex(32),
               "SSO_METRICS_TOKEN": token, "SSO_KEYS_DIR": f"{tmp}/keys",
               "SSO_INSTANCE_PATH": f"{tmp}/instance", "SSO_LOG_LEVEL": "WARNING"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        subprocess.run([SSO, "db", "upgrade"], env=env, check=True, capture_output=True)
        nodes = []
        try:
            for _ in range(2):
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                process = subprocess.Popen(  # noqa: S603
                    [SSO, "serve", "--port", str(port), "--workers", "2"],
                    env={**env, "SSO_ISSUER": url}, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True)
                nodes.append((url, process))
            for url, process in nodes:
                wait_until_up(url, process)
            a, b = nodes[0][0], nodes[1][0]
            for _ in range(1000):
                get(a + "/.well-known/openid-configuration")
            times = []
            for _ in range(args.scrapes):
                started = time.perf_counter()
                body = get(a + "/metrics", Authorization=f"Bearer {token}")
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            counted = re.search(rb'^sso_http_requests_total\{endpoint="oidc.discovery",'
                                rb'status="2xx"\} (\S+)$', body, flags=re.M)
            print(f"discovery requests counted by one scrape: "
                  f"{float(counted.group(1)) if counted else 0:.0f} of 1000 sent (+ start-up)")
            print(f"/metrics scrape ({len(body)} bytes, 2 workers): median "
                  f"{statistics.median(times):.1f} ms, p90 {times[int(len(times) * 0.9)]:.1f} "
                  f"ms, max {times[-1]:.1f} ms")
            seen = []
            for _ in range(args.rotations):
                listed = subprocess.run([SSO, "keys", "list"], env={**env, "SSO_ISSUER": a},
                                        check=True, capture_output=True, text=True).stdout
                # The published next keys become the active ones: B's JWKS lists actives first.
                wanted = {line.split()[2] for line in listed.splitlines()
                          if line.split()[1] == "next"}
                subprocess.run([SSO, "keys", "rotate"], env={**env, "SSO_ISSUER": a},
                               check=True, capture_output=True)
                done = time.perf_counter()
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    jwks = json.loads(get(b + "/jwks.json"))
                    if {key["kid"] for key in jwks["keys"][:2]} == wanted:
                        break
                    time.sleep(0.01)
                seen.append(time.perf_counter() - done)
            print(f"rotation through the CLI seen by node B's JWKS after: "
                  f"{', '.join(f'{s:.2f}' for s in seen)} s (max {max(seen):.2f} s; "
                  f"SSO_KEYS_CHECK_INTERVAL=1)")
        finally:
            for _, process in nodes:
                os.killpg(process.pid, signal.SIGTERM)
            for _, process in nodes:
                process.wait(30)


if __name__ == "__main__":
    main()
