"""What the test fixtures spend per test on cleaning the database: emptying every table
(``TRUNCATE`` on PostgreSQL, ``DELETE`` per table on SQLite) against rolling the test's
transaction back (tests/conftest.py ``rolled_back``).

    .venv/bin/python bench/db_fixtures.py [--runs 40] [--json]

Each run is one "test": a user created and committed through the service, as most tests do,
then the clean-up. Both backends, the schema from the migrations; PostgreSQL is the server
named by ``SSO_TEST_DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``),
in a database created and dropped here. Reported per backend and path: the median, min and
max milliseconds of one test's work plus its clean-up.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import (  # noqa: E402
    DEFAULT_REDIS,
    _empty_tables,
    _pg_admin_url,
    rolled_back,
)


@contextmanager
def _database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'bench.sqlite3'}"
        return
    from urllib.parse import urlsplit

    import psycopg

    admin = _pg_admin_url()
    name = f"sso_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = urlsplit(admin)._replace(path=f"/{name}").geturl()
        yield url.replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _one_test(app: Any, n: int) -> None:
    from sso.accounts.service import create_user
    from sso.extensions import db

    with app.app_context():
        create_user(f"bench{n}", password=None, email=f"bench{n}@example.com")
        db.session.commit()


def _measure(app: Any, runs: int, path: str) -> list[float]:
    timings = []
    for n in range(runs + 1):
        started = time.perf_counter()
        if path == "truncate":
            _one_test(app, n)
            _empty_tables(app)
        else:
            with rolled_back(app):
                _one_test(app, n)
        if n:  # the first run warms up
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from sso import create_app, migrate

    results: dict[str, dict[str, float]] = {}
    for kind in ("sqlite", "postgresql"):
        with tempfile.TemporaryDirectory() as tmp, _database(kind, Path(tmp)) as url:
            app = create_app({
                "TESTING": True, "ISSUER": "http://sso.test", "SECRET_KEY": "b" * 64,
                "DATABASE_URL": url, "REDIS_URL": DEFAULT_REDIS,
                "REDIS_PREFIX": f"ssobench:{secrets.token_hex(3)}:", "KEYS_DIR": tmp,
                "INSTANCE_PATH": tmp, "ARGON2_MEMORY_KIB": 8 * 1024, "ARGON2_TIME_COST": 1,
            })
            migrate.upgrade(app)
            # Interleaved halves, so a change in the machine's load hits both paths alike.
            half: dict[str, list[float]] = {"truncate": [], "rollback": []}
            for _ in range(2):
                for name, timings in half.items():
                    timings.extend(_measure(app, args.runs // 2 or 1, name))
            for name, timings in half.items():
                results[f"{kind} {name}"] = {
                    "median_ms": round(statistics.median(timings), 2),
                    "min_ms": round(min(timings), 2), "max_ms": round(max(timings), 2),
                }
            from sso.extensions import db

            with app.app_context():
                db.engine.dispose()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'backend and path':<24}{'median ms':>10}{'min':>8}{'max':>8}")
    for name, row in results.items():
        print(f"{name:<24}{row['median_ms']:>10}{row['min_ms']:>8}{row['max_ms']:>8}")


if __name__ == "__main__":
    main()
