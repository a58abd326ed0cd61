"""Fixtures on real stores: every database test runs on SQLite and on PostgreSQL, with Redis.

* PostgreSQL: a fresh database per test session, created on the server named by
  ``SSO_TEST_DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``) and dropped
  afterwards. If that server does not answer the PostgreSQL half is skipped, unless
  ``SSO_TEST_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) turns the skip into a failure.
* Redis: ``SSO_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) with a key prefix of
  its own, so parallel runs share one server; the prefix is emptied after each test.
* The schema comes from the Alembic migrations, never from ``create_all``.
* Each test runs inside one outer transaction on one connection that is rolled back at its
  end (indico's ``testing/fixtures/database.py`` is the model). The app's sessions join it
  with a SAVEPOINT each (SQLAlchemy's ``join_transaction_mode="create_savepoint"``), so code
  that commits or rolls back behaves as in production. Tests that need real commits seen by
  other connections (threads racing, a server in another thread or process, a browser
  against a served app) are marked ``@pytest.mark.truncate``, or are found by their marks
  (``browser``, ``slow``) and fixtures (``live_provider``): after those every table is
  emptied instead. Using the database from another thread in a rolled-back test fails with
  a message naming the mark.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import redis as redis_lib
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from sso import create_app, migrate

ISSUER = "http://sso.test"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "truncate: commits for real (other threads or processes"
                            " read the rows); every table is emptied afterwards")


def _pg_admin_url() -> str:
    return os.environ.get("SSO_TEST_DATABASE_URL", DEFAULT_PG).replace("postgresql+psycopg",
                                                                       "postgresql")


def _pg_available() -> bool:
    try:
        with psycopg.connect(_pg_admin_url(), connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _answers(url: str) -> bool:
    try:
        return bool(redis_lib.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis_lib.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Redis named by SSO_TEST_REDIS_URL; else 127.0.0.1:6379; else a real redis-server
    started for this session (the embedded one ``make run`` uses), so a fresh laptop works."""
    url = os.environ.get("SSO_TEST_REDIS_URL")
    if url:
        if not _answers(url):
            pytest.fail(f"Redis at {url} (SSO_TEST_REDIS_URL) does not answer")
        yield url
        return
    if _answers(DEFAULT_REDIS):
        yield DEFAULT_REDIS
        return
    from sso.embedded import ensure_redis, stop_redis

    folder = str(tmp_path_factory.mktemp("redis"))
    yield ensure_redis(folder)
    stop_redis(folder)


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    return f"ssotest:{secrets.token_hex(4)}:"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'sso.sqlite3'}"
        return
    if not _pg_available():
        if os.environ.get("SSO_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL at {_pg_admin_url()} does not answer")
        pytest.skip(f"PostgreSQL at {_pg_admin_url()} does not answer")
    name = f"sso_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = _pg_admin_url()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin)
    url = parts._replace(path=f"/{name}").geturl().replace("postgresql://",
                                                          "postgresql+psycopg://", 1)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="session")
def app_config(database_url: str, redis_url: str, redis_prefix: str, keys_dir: Path,
               tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return {
        "TESTING": True,
        "ISSUER": ISSUER,
        "SECRET_KEY": secrets.token_hex(32),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "KEYS_DIR": str(keys_dir),
        "INSTANCE_PATH": str(tmp_path_factory.mktemp("instance")),
        # Real argon2id, cheaper than production so the suite stays quick.
        "ARGON2_MEMORY_KIB": 8 * 1024,
        "ARGON2_TIME_COST": 1,
        # The account forms' even answer time (bench/reliability.py measures the real one).
        "EVEN_ANSWER_SECONDS": 0.05,
    }


@pytest.fixture(scope="session")
def app(app_config: dict[str, Any]) -> Flask:
    """The provider on one database backend, migrated to head once per session."""
    application = create_app(app_config)
    migrate.upgrade(application)
    from sso.extensions import db

    with application.app_context():
        # Committed before any test: keys first made inside a rolled-back test would vanish.
        application.extensions["sso_keys"].ensure()
        db.session.remove()
    return application


def _empty_tables(app: Flask) -> None:
    from sso.extensions import db

    with app.app_context():
        db.session.remove()
        # The signing keys stay, as the key files did before they moved into the database.
        tables = [t for t in reversed(db.metadata.sorted_tables) if t.name != "signing_keys"]
        with db.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                names = ", ".join(f'"{t.name}"' for t in tables)
                connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    # A row's parent in the same table (a group's) goes first: RESTRICT.
                    for column in {fk.parent for fk in table.foreign_keys
                                   if fk.column.table is table}:
                        connection.execute(table.update().values({column.name: None}))
                    connection.execute(table.delete())


def _empty_redis(url: str, prefix: str) -> None:
    client = redis_lib.Redis.from_url(url)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)


#: Fixtures that serve the app to other threads or processes: rows must really be committed.
SHARING_FIXTURES = frozenset({"live_provider"})
#: Marks of tests that reach the app through a server (a browser, server processes).
SHARING_MARKS = ("truncate", "browser", "slow")


def needs_truncate(item: pytest.Item) -> bool:
    """Whether a test must commit for real (and have every table emptied afterwards)."""
    if any(item.get_closest_marker(mark) for mark in SHARING_MARKS):
        return True
    return bool(SHARING_FIXTURES.intersection(getattr(item, "fixturenames", ())))


@contextmanager
def rolled_back(app: Flask) -> Iterator[Any]:
    """Run the block inside one transaction on one connection, rolled back at the end.

    Every session of an app on ``app``'s database (one per app context, as in a request)
    binds to that connection and opens a SAVEPOINT in it, so a commit releases the savepoint
    and a rollback returns to it, while the outer transaction keeps everything from the next
    test.
    """
    from flask import current_app, has_app_context
    from flask_sqlalchemy.session import Session as FlaskSession

    from sso import database as engines
    from sso.extensions import db

    with app.app_context():
        engine = db.engine
    connection = engine.connect()
    raw = connection.connection.driver_connection
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # pysqlite begins a transaction only before a write, so a first SAVEPOINT would
        # start one that its RELEASE commits; begin explicitly instead (SQLAlchemy's recipe
        # for SAVEPOINTs on pysqlite).
        raw.isolation_level = None
    outer = connection.begin()
    if sqlite:
        connection.exec_driver_sql("BEGIN")
    keys = app.extensions["sso_keys"]
    fingerprint = keys.fingerprint
    owner = threading.get_ident()
    original = FlaskSession.get_bind
    original_read_bind = engines.read_bind
    original_write_bind = engines.write_bind
    database = app.config["SQLALCHEMY_DATABASE_URI"]

    def ours() -> bool:
        # Any app built on the test's database (a test may build one with other settings).
        if has_app_context() and current_app.config["SQLALCHEMY_DATABASE_URI"] == database:
            if threading.get_ident() != owner:
                raise RuntimeError("a rolled-back test used the database from another thread;"
                                   " mark it @pytest.mark.truncate")
            return True
        return False

    def get_bind(self: Any, *args: Any, **kwargs: Any) -> Any:
        return connection if ours() else original(self, *args, **kwargs)

    def read_bind() -> Any:
        return connection if ours() else original_read_bind()

    def write_bind() -> Any:
        return connection if ours() else original_write_bind()

    try:
        with pytest.MonkeyPatch.context() as monkeypatch:
            monkeypatch.setattr(FlaskSession, "get_bind", get_bind)
            monkeypatch.setattr(engines, "read_bind", read_bind)
            monkeypatch.setattr(engines, "write_bind", write_bind)
            monkeypatch.setitem(db.session.session_factory.kw, "join_transaction_mode",
                                "create_savepoint")
            yield connection
            with app.app_context():
                db.session.remove()
    finally:
        outer.rollback()
        if sqlite:
            raw.isolation_level = ""
        connection.close()
        if keys.fingerprint != fingerprint:  # keys rotated in the test: forget them too
            with app.app_context():
                keys.refresh(force=True)
                db.session.remove()


@pytest.fixture(autouse=True)
def _clean_stores(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts with empty tables and an empty Redis prefix: its transaction is
    rolled back, or (tests that commit for other connections) every table emptied."""
    if "app" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    try:
        if needs_truncate(request.node):
            yield
            _empty_tables(app)
        else:
            with rolled_back(app):
                yield
    finally:
        _empty_redis(app.config["REDIS_URL"], app.config["REDIS_PREFIX"])
        from sso import ratelimit

        ratelimit.local.clear()  # the counters kept in this process while Redis was away


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    """An application context for calling services directly."""
    with app.app_context():
        yield
        from sso.extensions import db

        db.session.remove()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


# Factories.

PASSWORD = "Correct-horse-9-battery"


@pytest.fixture
def make_user(app: Flask) -> Any:
    def make(username: str = "alice", password: str = PASSWORD, **kwargs: Any) -> Any:
        from sso.accounts.service import create_user
        from sso.extensions import db

        with app.app_context():
            kwargs.setdefault("email", f"{username}@example.com")
            kwargs.setdefault("name", username.title())
            user = create_user(username, password=password, **kwargs)
            db.session.commit()
            return _Snapshot(id=user.id, username=user.username, subject=user.subject,
                             email=user.email)

    return make


@pytest.fixture
def make_client(app: Flask) -> Any:
    def make(name: str = "ERP", redirect_uris: list[str] | None = None, **kwargs: Any) -> Any:
        from sso.extensions import db
        from sso.oidc.clients import create_client

        with app.app_context():
            kwargs.setdefault("first_party", True)
            kwargs.setdefault("grant_types", ["authorization_code", "refresh_token"])
            kwargs.setdefault("post_logout_redirect_uris", ["https://erp.example.com/bye"])
            client, secret = create_client(
                name, redirect_uris or ["https://erp.example.com/callback"], **kwargs
            )
            db.session.commit()
            return _Snapshot(client_id=client.client_id, secret=secret,
                             redirect_uri=client.redirect_uris[0] if client.redirect_uris else None)

    return make


class _Snapshot:
    """Plain attributes copied out of a model, usable after its session is gone."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


# Protocol helpers.


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Flow:
    """Drive the code flow through the test client, the way a browser and an RP would."""

    http: FlaskClient
    app_client: Any

    def authorize_params(self, **overrides: Any) -> dict[str, str]:
        verifier, challenge = pkce_pair()
        self.verifier = verifier
        params = {
            "response_type": "code",
            "client_id": self.app_client.client_id,
            "redirect_uri": self.app_client.redirect_uri,
            "scope": "openid profile email roles",
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    def login(self, username: str = "alice", password: str = PASSWORD,
              flow_id: str = "", next_path: str = "") -> Any:
        """Sign in on the sign-in page for a pending request (``flow_id``), a page of this
        site to return to (``next_path``), or neither (the account page)."""
        query = {"flow": flow_id} if flow_id else {"next": next_path} if next_path else {}
        page = self.http.get("/login", query_string=query)
        return self.http.post("/login", data={
            "csrf_token": csrf_of(page.get_data(as_text=True)), **query,
            "username": username, "password": password,
        })

    def authorize(self, username: str = "alice", password: str = PASSWORD,
                  **overrides: Any) -> dict[str, str]:
        """Run /authorize (signing in if asked) until the redirect back; return its query."""
        self.params = self.authorize_params(**overrides)
        response = self.http.get("/authorize", query_string=self.params)
        for _ in range(5):
            assert response.status_code == 302, response.get_data(as_text=True)[:500]
            location = response.headers["Location"]
            if location.startswith(self.params["redirect_uri"]):
                return query_of(location)
            if location.startswith("/login"):
                response = self.login(username, password, query_of(location)["flow"])
            else:
                response = self.http.get(location)
        raise AssertionError("the flow did not come back to the app")

    def token(self, code: str, verifier: str | None = None, **extra: Any) -> Any:
        data = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": self.params["redirect_uri"],
                "code_verifier": verifier or self.verifier}
        data.update(extra)
        data = {k: v for k, v in data.items() if v is not None}
        return self.http.post("/token", data=data, headers=basic(self.app_client))


def resumed(http: FlaskClient, response: Any) -> Any:
    """Follow the passage's hop back to the protocol (``/authorize/resume``), which answers
    the app: the response the app's browser gets in the end."""
    while (response.status_code == 302
           and response.headers["Location"].startswith("/authorize/resume")):
        response = http.get(response.headers["Location"])
    return response


def paths_behind(app: Flask, layer_type: type, monkeypatch: Any) -> list[str]:
    """The paths that the WSGI layer of ``layer_type`` in front of Flask passes on to the app
    behind it (``sso.oidc.documents``, ``sso.oidc.direct``), recorded until the test ends."""
    layer = app.wsgi_app
    while not isinstance(layer, layer_type):
        layer = layer.wsgi_app  # type: ignore[attr-defined]
    behind, seen = layer.wsgi_app, []

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        seen.append(environ["PATH_INFO"])
        return behind(environ, start_response)

    monkeypatch.setattr(layer, "wsgi_app", recording)
    return seen


def basic(app_client: Any) -> dict[str, str]:
    if not getattr(app_client, "secret", None):
        return {}
    raw = f"{app_client.client_id}:{app_client.secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.fixture
def erp(make_client: Any) -> Any:
    return make_client("ERP")


@pytest.fixture
def alice(make_user: Any) -> Any:
    return make_user("alice")


@pytest.fixture
def flow(client: FlaskClient, erp: Any, alice: Any) -> Flow:
    return Flow(client, erp)


# A provider served over real HTTP, and a real browser (Debian's chromium driven by Playwright).


@dataclass
class LiveProvider:
    """The provider on a real port; it shares the database and Redis of the ``app`` fixture,
    so factories and services called through ``app`` see what the browser did."""

    url: str
    app: Flask


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_in_thread(wsgi_app: Any, port: int) -> Any:
    """Serve ``wsgi_app`` on 127.0.0.1:``port`` from a daemon thread; returns the server."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, wsgi_app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="session")
def live_provider(app: Flask, app_config: dict[str, Any]) -> Iterator[LiveProvider]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    live = create_app({**app_config, "ISSUER": url})
    server = serve_in_thread(live, port)
    yield LiveProvider(url=url, app=live)
    server.shutdown()


CHROMIUM = os.environ.get("SSO_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    """Playwright, when Debian's chromium is there; missing, the browser tests skip, unless
    SSO_TEST_REQUIRE_BROWSER=1."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("SSO_TEST_REQUIRE_BROWSER") == "1":
            pytest.fail(f"no chromium at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"no chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="session")
def chromium(playwright: Any) -> Iterator[Any]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def phone_device(playwright: Any) -> dict[str, Any]:
    """What a browser context needs to look like a phone (viewport, touch, user agent)."""
    return dict(playwright.devices["Pixel 7"])


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[Any]:
    """A fresh browser profile (own cookies) with an English UI, and one page in it."""
    context = chromium.new_context(locale="en-US")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@contextmanager
def production_access_log(stream: Any, logger: logging.Logger | None = None) -> Iterator[Any]:
    """The access lines (or ``logger``'s) going, as under ``sso serve`` (JSON, our handler
    only, no propagation), to ``stream``; each line written at once again afterwards. Enter it
    in the test's body: pytest's log capture joins the loggers that do not propagate when a
    test's call begins, and its handler would send the lines through ``logging``."""
    from sso import logs  # noqa: PLC0415

    handler = logs._handler(logging.StreamHandler(stream), "json")
    source = logs.access_log if logger is None else logger
    saved = (source.level, source.propagate)
    source.addHandler(handler)
    source.setLevel(logging.INFO)
    source.propagate = False
    try:
        yield stream
    finally:
        logs.batch_lines(0)
        source.removeHandler(handler)
        source.setLevel(saved[0])
        source.propagate = saved[1]
