"""Two provider processes (``sso serve``, production settings) on one database and one Redis:
a rotation made by a third process (``sso keys rotate``) is served and used by both."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.conftest import free_port

pytestmark = pytest.mark.slow

SSO = str(Path(sys.executable).with_name("sso"))


def _jwks(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/jwks.json", timeout=10) as answer:  # noqa: S310
        return json.loads(answer.read())["keys"]  # type: ignore[no-any-return]


@pytest.fixture
def environment(app: Flask, tmp_path: Path) -> dict[str, str]:
    """Production settings reaching the session's database, Redis prefix and key-encryption
    key (the ``app`` fixture's), so the processes and the tests share one key set."""
    config = app.config
    return {
        "PATH": f"{Path(SSO).parent}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(tmp_path),
        "SSO_DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"],
        "SSO_REDIS_URL": config["REDIS_URL"], "SSO_REDIS_PREFIX": config["REDIS_PREFIX"],
        "SSO_SECRET_KEY": config["SECRET_KEY"],
        "SSO_KEY_ENCRYPTION_KEY": ",".join(config["KEY_ENCRYPTION_KEYS"]),
        "SSO_INSTANCE_PATH": str(tmp_path / "instance"), "SSO_KEYS_DIR": str(tmp_path / "keys"),
        "SSO_LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def nodes(environment: dict[str, str]) -> Iterator[list[str]]:
    started = []
    try:
        for _ in range(2):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            process = subprocess.Popen(
                [SSO, "serve", "--port", str(port)], env={**environment, "SSO_ISSUER": url},
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
            started.append((url, process))
        for url, process in started:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, f"{url} does not answer"
                try:
                    _jwks(url)
                    break
                except OSError:
                    time.sleep(0.2)
        yield [url for url, _ in started]
    finally:
        for _, process in started:
            os.killpg(process.pid, signal.SIGTERM)
        for _, process in started:
            process.wait(30)


def test_a_rotation_by_one_process_is_served_by_every_node(
        app: Flask, environment: dict[str, str], nodes: list[str]) -> None:
    first, second = nodes
    assert _jwks(first) == _jwks(second)
    with app.app_context():
        promoted = {entry["kid"] for entry in app.extensions["sso_keys"].describe()
                    if entry["state"] == "next"}
    rotated = subprocess.run([SSO, "keys", "rotate"], env={**environment,
                                                           "SSO_ISSUER": first},
                             capture_output=True, text=True, timeout=300)
    assert rotated.returncode == 0, rotated.stderr
    # Each node checks Redis at most every second; wait (generously) until both serve the
    # promoted keys as their active ones (listed first).
    deadline = time.monotonic() + 60
    for url in nodes:
        while {key["kid"] for key in _jwks(url)[:2]} != promoted:
            assert time.monotonic() < deadline, f"{url} still serves the old keys"
            time.sleep(0.05)
    assert _jwks(first) == _jwks(second)
