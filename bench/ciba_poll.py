"""CIBA poll load: ``--pending`` backchannel requests waiting for the user, each polled at the
token endpoint at its ``interval`` (two rounds, ``interval`` seconds apart, so no poll is a
``slow_down``), and the provider's CPU time per poll.

In process, through the WSGI test client (no sockets): the figure is the provider's own work
per poll (client authentication, one Lua script on Redis, the error response), measured with
``time.process_time``. Needs Redis (``SSO_BENCH_REDIS_URL``, default redis://127.0.0.1:6379/0).

    .venv/bin/python bench/ciba_poll.py --pending 1000
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import redis

from sso import create_app, migrate

CIBA = "urn:openid:params:grant-type:ciba"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pending", type=int, default=1000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ciba-bench-"))
    redis_url = os.environ.get("SSO_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"ssobench:{secrets.token_hex(4)}:"
    app = create_app({
        "ISSUER": "http://127.0.0.1:5999", "SECRET_KEY": secrets.token_hex(32),
        "DATABASE_URL": f"sqlite:///{folder / 'sso.sqlite3'}", "REDIS_URL": redis_url,
        "REDIS_PREFIX": prefix, "KEYS_DIR": str(folder / "keys"),
        "INSTANCE_PATH": str(folder / "instance"), "ENV": "development",
    })
    migrate.upgrade(app)
    with app.app_context():
        from sso.accounts.service import create_user
        from sso.extensions import db
        from sso.oidc.clients import create_client

        create_user("bench", password="Lantern-" + secrets.token_hex(8) + "-9!",
                    email="bench@example.com")
        client, secret = create_client("Call centre", ["https://cc.example.com/cb"],
                                       grant_types=["authorization_code", CIBA],
                                       policy={"ciba_mode": "poll"})
        db.session.commit()
        client_id = client.client_id
    auth = {"Authorization": "Basic " + base64.b64encode(
        f"{client_id}:{secret}".encode()).decode()}
    http = app.test_client()
    ids = []
    for _ in range(args.pending):
        answer = http.post("/bc-authorize", headers=auth, data={
            "scope": "openid", "login_hint": "bench", "requested_expiry": "600"})
        ids.append(answer.get_json()["auth_req_id"])
    interval = 5
    cpu_per_poll: list[float] = []
    errors: dict[str, int] = {}
    for round_number in range(2):
        started = time.monotonic()
        for auth_req_id in ids:
            before = time.process_time()
            answer = http.post("/token", headers=auth,
                               data={"grant_type": CIBA, "auth_req_id": auth_req_id})
            cpu_per_poll.append(time.process_time() - before)
            error = answer.get_json().get("error", "ok")
            errors[error] = errors.get(error, 0) + 1
        if round_number == 0:
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    cpu_per_poll.sort()
    print(f"pending requests: {args.pending}, polls: {len(cpu_per_poll)}, answers: {errors}")
    print(f"CPU per poll: median {statistics.median(cpu_per_poll) * 1000:.2f} ms, "
          f"p99 {cpu_per_poll[int(len(cpu_per_poll) * 0.99) - 1] * 1000:.2f} ms")
    print(f"polls per CPU-second: {len(cpu_per_poll) / sum(cpu_per_poll):.0f}; "
          f"{args.pending} requests polled every {interval} s use "
          f"{args.pending / interval * statistics.mean(cpu_per_poll) * 100:.1f}% of one core")
    client_redis = redis.Redis.from_url(redis_url)
    keys = list(client_redis.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client_redis.delete(*keys)


if __name__ == "__main__":
    main()
