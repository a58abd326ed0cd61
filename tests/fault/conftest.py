"""The fault suite's own stores: a PostgreSQL and a Redis started for this module, which the
tests stop, kill and freeze (never the shared ones), and the provider on them."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from sso import create_app, migrate, outbound
from tests.apps.conftest import make_app  # noqa: F401 - fixture
from tests.fault.services import Postgres, Redis

#: Short bounds, so a fault costs seconds; docs/hardening.md has the production defaults.
FAULT_SETTINGS = {
    "DB_CONNECT_TIMEOUT": 2,
    "DB_POOL_TIMEOUT": 2,
    "DB_STATEMENT_TIMEOUT": 2,
    "DB_LOCK_TIMEOUT": 2,
}


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    if not Postgres.available():
        pytest.skip("no PostgreSQL binaries (apt install postgresql)")
    # Not under pytest's folder: the server runs as the postgres user, which must reach it.
    folder = Path(tempfile.mkdtemp(prefix="sso-fault-pg-"))
    server = Postgres(folder).init().start()
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    if not Redis.available():
        pytest.skip("no redis-server (apt install redis-server)")
    server = Redis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def app(postgres: Postgres, redis_server: Redis, tmp_path_factory: pytest.TempPathFactory
        ) -> Flask:
    """The provider on the fault suite's own PostgreSQL and Redis (overrides the shared one,
    so the usual fixtures, make_user, make_client, Flow, work on it)."""
    application = create_app({
        "TESTING": True,
        "ISSUER": "http://sso.test",
        "SECRET_KEY": secrets.token_hex(32),
        "DATABASE_URL": postgres.url,
        "REDIS_URL": redis_server.url,
        "REDIS_PREFIX": "fault:",
        "KEYS_DIR": str(tmp_path_factory.mktemp("keys")),
        "INSTANCE_PATH": str(tmp_path_factory.mktemp("instance")),
        "ARGON2_MEMORY_KIB": 8 * 1024,
        "ARGON2_TIME_COST": 1,
        **FAULT_SETTINGS,
    })
    migrate.upgrade(application)
    return application


@pytest.fixture(autouse=True)
def _fresh_breakers() -> Iterator[None]:
    outbound.reset()
    yield
    outbound.reset()


def thaw_everything(postgres: Postgres, redis_server: Redis) -> None:
    if postgres.frozen:
        postgres.thaw()
    if postgres.process is None:
        postgres.start()
    if redis_server.process is None:
        redis_server.start()


@pytest.fixture(autouse=True)
def _stores_back(request: pytest.FixtureRequest) -> Iterator[None]:
    """Whatever a test did to the stores, the next one finds them running."""
    yield
    if "postgres" in request.fixturenames and "redis_server" in request.fixturenames:
        thaw_everything(request.getfixturevalue("postgres"),
                        request.getfixturevalue("redis_server"))
