"""Health endpoints for load balancers and orchestrators (docs/deploy.md).

* ``GET /healthz``: liveness. The process answers; no store is touched, so a slow database
  never gets a node restarted.
* ``GET /readyz``: readiness. The database answers and its schema is at (or past) the
  migrations this code knows, the signing keys load, Redis answers. A node without its
  database or its keys cannot sign anyone in: 503, the load balancer takes it out. Without
  Redis, password sign-in still works (QR login and the counters degrade), so the node stays
  in with 200 and ``"status": "degraded"``.

Both are cheap enough to be polled every second: one ``SELECT`` of the Alembic revision, one
``PING``, keys from memory. Neither writes an audit row, reads the session cookie or sets
one, and the access log leaves them out (:data:`sso.logs.QUIET_PATHS`). A database schema
*ahead* of this code (a newer release migrated it during a rolling upgrade) is ready: the
migrations are additive, so the old nodes keep serving until they are replaced.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Flask, Response, current_app
from sqlalchemy import text

from .extensions import db

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

_HEADS = "sso_health_heads"


def _reply(body: dict[str, Any], status: int) -> Response:
    response = Response(json.dumps(body, sort_keys=True) + "\n", status=status,
                        mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: the process answers."""
    return _reply({"status": "ok"}, 200)


@bp.get("/readyz")
def readyz() -> Response:
    """Readiness: database, migrations and keys (required), Redis (optional)."""
    checks: dict[str, str] = {}
    required_ok = True

    try:
        with db.engine.connect() as connection:
            revision = connection.execute(
                text("SELECT version_num FROM alembic_version")).scalar()
        checks["database"] = "ok"
        checks["migrations"] = _migrations(revision)
        required_ok = checks["migrations"] in ("ok", "ahead")
    except Exception as error:  # any failure means "not ready", never a 500
        log.warning("readiness: database check failed: %s", type(error).__name__)
        checks["database"] = f"error: {type(error).__name__}"
        checks["migrations"] = "unknown"
        required_ok = False

    try:
        keys = current_app.extensions["sso_keys"]
        for alg in sorted({current_app.config["ID_TOKEN_ALG"],
                           current_app.config["ACCESS_TOKEN_ALG"]}):
            keys.active(alg)
        checks["keys"] = "ok"
    except Exception as error:
        log.warning("readiness: signing keys check failed: %s", type(error).__name__)
        checks["keys"] = f"error: {type(error).__name__}"
        required_ok = False

    try:
        current_app.extensions["sso_redis"].client.ping()
        checks["redis"] = "ok"
    except Exception as error:
        checks["redis"] = f"error: {type(error).__name__}"
    finally:
        db.session.remove()

    if not required_ok:
        return _reply({"status": "unavailable", "checks": checks}, 503)
    status = "ready" if checks["redis"] == "ok" else "degraded"
    return _reply({"status": status, "checks": checks}, 200)


def _migrations(revision: str | None) -> str:
    """``ok`` at head, ``ahead`` past it (a newer release migrated), else ``behind``."""
    heads, known = _known_revisions()
    if revision in heads:
        return "ok"
    if revision is not None and revision not in known:
        return "ahead"
    return "behind"


def _known_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """The heads and every revision of this code's migrations, read once per process."""
    cached = current_app.extensions.get(_HEADS)
    if cached is None:
        from alembic.script import ScriptDirectory  # noqa: PLC0415

        from . import migrate  # noqa: PLC0415

        scripts = ScriptDirectory.from_config(migrate.alembic_config(current_app))
        cached = (frozenset(scripts.get_heads()),
                  frozenset(r.revision for r in scripts.walk_revisions()))
        current_app.extensions[_HEADS] = cached
    return cached  # type: ignore[no-any-return]


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
