"""``/healthz`` and ``/readyz`` (sso/health.py), on real stores.

The readiness answer is what a load balancer acts on: 503 takes a node out (no database, a
schema behind this code, no signing keys), 200 keeps it in, with ``degraded`` when only Redis
is missing (password sign-in works without it).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from sso import create_app, migrate
from sso.config import ConfigError, resolve
from sso.extensions import RedisStore, db

DEAD_REDIS = "redis://127.0.0.1:1/0"


def _body(response: Any) -> dict[str, Any]:
    return json.loads(response.get_data(as_text=True))  # type: ignore[no-any-return]


def _app(tmp_path: Path, **overrides: Any) -> Flask:
    return create_app({
        "TESTING": True, "SECRET_KEY": secrets.token_hex(32),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'sso.sqlite3'}", "REDIS_URL": DEAD_REDIS,
        "KEYS_DIR": str(tmp_path / "keys"), "INSTANCE_PATH": str(tmp_path / "instance"),
        **overrides,
    })


def test_ready_with_every_store(app: Flask) -> None:
    from sso.audit import AuditEvent

    http = app.test_client()
    with app.app_context():
        audited = db.session.scalar(select(func.count()).select_from(AuditEvent))
    for path in ("/healthz", "/readyz"):
        response = http.get(path)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "no-store"
        assert "Set-Cookie" not in response.headers
    body = _body(http.get("/readyz"))
    assert body == {"status": "ready", "checks": {"database": "ok", "migrations": "ok",
                                                  "keys": "ok", "redis": "ok"}}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == audited


def test_redis_down_is_degraded_but_ready(app: Flask) -> None:
    store = app.extensions["sso_redis"]
    app.extensions["sso_redis"] = RedisStore(DEAD_REDIS, store.prefix)
    try:
        response = app.test_client().get("/readyz")
    finally:
        app.extensions["sso_redis"] = store
    assert response.status_code == 200
    body = _body(response)
    assert body["status"] == "degraded"
    assert body["checks"]["redis"].startswith("error")
    assert body["checks"]["database"] == "ok"


def test_database_down_is_not_ready_but_alive(tmp_path: Path) -> None:
    app = _app(tmp_path, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    http = app.test_client()
    assert http.get("/healthz").status_code == 200
    response = http.get("/readyz")
    assert response.status_code == 503
    body = _body(response)
    assert body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("error: ")
    assert "127.0.0.1" not in response.get_data(as_text=True)  # no connection details leak


def test_unmigrated_database_is_not_ready(tmp_path: Path) -> None:
    app = _app(tmp_path)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert _body(response)["checks"]["database"].startswith("error")


def test_schema_behind_the_code_is_not_ready(tmp_path: Path) -> None:
    app = _app(tmp_path)
    with app.app_context():
        from alembic.script import ScriptDirectory

        scripts = ScriptDirectory.from_config(migrate.alembic_config(app))
        (head,) = scripts.get_heads()
        previous = scripts.get_revision(head).down_revision
    migrate.upgrade(app, str(previous))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert _body(response)["checks"]["migrations"] == "behind"
    migrate.upgrade(app)
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    assert _body(response) == {"status": "degraded", "checks": {
        "database": "ok", "migrations": "ok", "keys": "ok", "redis": "error: ConnectionError"}}


def test_schema_ahead_of_the_code_is_ready(tmp_path: Path) -> None:
    """During a rolling upgrade the new release migrates first; old nodes keep serving."""
    app = _app(tmp_path)
    migrate.upgrade(app)
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    assert _body(response)["checks"]["migrations"] == "ahead"


def test_keys_that_do_not_open_are_not_ready(tmp_path: Path) -> None:
    app = _app(tmp_path)
    migrate.upgrade(app)
    app.test_client().get("/readyz")  # the first node creates the keys
    # A node whose key-encryption key opens none of them cannot sign.
    other = _app(tmp_path, KEY_ENCRYPTION_KEY="another-key-encryption-key-" + "x" * 32)
    response = other.test_client().get("/readyz")
    assert response.status_code == 503
    assert _body(response)["checks"]["keys"] == "error: KeyStoreError"
    assert app.test_client().get("/readyz").status_code == 200


# Redis Sentinel settings.

def _settings(tmp_path: Path, **environ: str) -> dict[str, Any]:
    return resolve(tmp_path, environ={"SSO_SECRET_KEY": "k" * 40,
                                      "SSO_KEY_ENCRYPTION_KEY": "e" * 40,
                                      "SSO_DATABASE_URL": "postgresql://db/sso", **environ})


def test_sentinels_replace_the_redis_url(tmp_path: Path) -> None:
    settings = _settings(tmp_path, SSO_REDIS_SENTINELS="10.0.0.1:26379, 10.0.0.2:26379",
                         SSO_REDIS_MASTER_NAME="sso")
    assert settings["REDIS_EMBEDDED"] is False
    app = create_app({"TESTING": True, "SECRET_KEY": "k" * 40, "INSTANCE_PATH": str(tmp_path),
                      "KEYS_DIR": str(tmp_path / "keys"),
                      "REDIS_SENTINELS": settings["REDIS_SENTINELS"],
                      "REDIS_MASTER_NAME": "sso"})
    store = app.extensions["sso_redis"]
    assert store.sentinels == [("10.0.0.1", 26379), ("10.0.0.2", 26379)]
    assert store.master_name == "sso"


def test_production_without_url_or_sentinels_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SSO_REDIS_URL"):
        _settings(tmp_path)


@pytest.mark.parametrize("value", ["10.0.0.1", "10.0.0.1:port", ":26379", "a:1,b"])
def test_malformed_sentinels_are_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="SSO_REDIS_SENTINELS"):
        _settings(tmp_path, SSO_REDIS_SENTINELS=value)
