"""The floor under the token paths: what the work they must do costs with nothing of ours
around it (issue 15, "the measured floor that stops it").

    .venv/bin/python bench/driver_floor.py [--database postgresql://postgres@127.0.0.1:5432/test]

Prints CPU-µs per operation of
* the signatures every token answer needs, through ``cryptography`` alone: RS256 (an ID token),
  ES256 (an access token) and the ES256 check of an access token seen for the first time;
* on SQLite (a file in WAL mode with ``synchronous=NORMAL``, as the provider runs it) and on
  PostgreSQL (``--database``: the server to make a scratch database on), through the driver
  alone, with fixed SQL on tables shaped like the provider's:
  - introspection's read: one indexed lookup outside a transaction (revoked? the user's
    status?), in autocommit;
  - one refresh's durable work: claim the token (``UPDATE ... RETURNING``), write the audit
    row and the new token, commit (a code exchange does the same with the code);
  - a signed-in user's authorization: four indexed reads in a transaction (the nonce, the
    session with its user, the app account, the second-factor facts), the code and its audit
    row, commit.

On PostgreSQL the backend's CPU is counted too (its process's, from ``/proc``), as
``make bench`` counts it. Nothing of the provider runs: no Flask, SQLAlchemy or Authlib. A
workload of ours costs at least the sum of the parts it needs plus the HTTP server's share
(``make bench``'s floor row), and the difference between that sum and our figure is our code.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

TICKS = os.sysconf("SC_CLK_TCK")

#: The provider's tables, cut to the columns these statements touch, with all their indexes,
#: unique constraints and foreign keys (each costs its pages on every write).
SCHEMA = """
CREATE TABLE users (id {serial}, subject VARCHAR(64) UNIQUE NOT NULL,
    username VARCHAR(64) UNIQUE NOT NULL, email VARCHAR(255) UNIQUE,
    status VARCHAR(16) NOT NULL);
CREATE TABLE clients (client_id VARCHAR(64) PRIMARY KEY);
CREATE TABLE revoked_access_tokens (jti VARCHAR(64) PRIMARY KEY, expires_at {time} NOT NULL);
CREATE INDEX ix_revoked_expires_at ON revoked_access_tokens (expires_at);
CREATE TABLE refresh_tokens (id {serial}, token_hash VARCHAR(64) UNIQUE NOT NULL,
    family_id VARCHAR(64) NOT NULL,
    client_id VARCHAR(64) NOT NULL REFERENCES clients (client_id),
    user_id INTEGER NOT NULL REFERENCES users (id), session_id VARCHAR(64),
    scope VARCHAR(255) NOT NULL, created_at {time} NOT NULL, expires_at {time} NOT NULL,
    used_at {time}, revoked_at {time}, successor VARCHAR(64), answer TEXT);
CREATE INDEX ix_refresh_client_id ON refresh_tokens (client_id);
CREATE INDEX ix_refresh_family_id ON refresh_tokens (family_id);
CREATE INDEX ix_refresh_session_id ON refresh_tokens (session_id);
CREATE INDEX ix_refresh_user_id ON refresh_tokens (user_id);
CREATE TABLE audit_events (id {serial}, at {time} NOT NULL, event VARCHAR(64) NOT NULL,
    outcome VARCHAR(16) NOT NULL, user_id INTEGER, subject VARCHAR(64),
    client_id VARCHAR(64), session_id VARCHAR(64), ip VARCHAR(64), user_agent VARCHAR(255),
    actor VARCHAR(64), details TEXT, request_id VARCHAR(64));
CREATE INDEX ix_audit_user_id ON audit_events (user_id);
CREATE INDEX ix_audit_event ON audit_events (event);
CREATE INDEX ix_audit_request_id ON audit_events (request_id);
CREATE INDEX ix_audit_at ON audit_events (at);
CREATE INDEX ix_audit_client_id ON audit_events (client_id);
CREATE TABLE sso_sessions (id VARCHAR(64) PRIMARY KEY, token_hash VARCHAR(64) UNIQUE NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users (id), auth_time {time} NOT NULL,
    expires_at {time} NOT NULL, ended_at {time});
CREATE INDEX ix_sessions_user_id ON sso_sessions (user_id);
CREATE TABLE app_accounts (id {serial}, user_id INTEGER NOT NULL REFERENCES users (id),
    client_id VARCHAR(64) NOT NULL REFERENCES clients (client_id),
    status VARCHAR(16) NOT NULL, UNIQUE (user_id, client_id));
CREATE INDEX ix_app_accounts_user_id ON app_accounts (user_id);
CREATE INDEX ix_app_accounts_client_id ON app_accounts (client_id);
CREATE TABLE authorization_codes (code_hash VARCHAR(64) PRIMARY KEY,
    grant_id VARCHAR(64) UNIQUE NOT NULL,
    client_id VARCHAR(64) NOT NULL REFERENCES clients (client_id),
    user_id INTEGER NOT NULL REFERENCES users (id), nonce VARCHAR(255),
    redirect_uri VARCHAR(512) NOT NULL, scope VARCHAR(255) NOT NULL,
    code_challenge VARCHAR(128), session_id VARCHAR(64), created_at {time} NOT NULL,
    expires_at {time} NOT NULL, consumed_at {time});
CREATE INDEX ix_codes_nonce_client ON authorization_codes (nonce, client_id);
CREATE INDEX ix_codes_expires_at ON authorization_codes (expires_at);
"""

READ = ("SELECT EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = {p}), users.username,"
        " users.status FROM (SELECT 1 AS one) AS one LEFT OUTER JOIN users ON users.subject = {p}")
CLAIM = ("UPDATE refresh_tokens SET used_at = {p}, successor = {p} WHERE token_hash = {p}"
         " AND used_at IS NULL AND revoked_at IS NULL AND expires_at > {p} RETURNING id,"
         " family_id, client_id, user_id, scope,"
         " (SELECT status FROM users WHERE users.id = refresh_tokens.user_id)")
AUDIT = ("INSERT INTO audit_events (at, event, outcome, user_id, client_id, ip, user_agent,"
         " details, request_id) VALUES ({p}, 'token.refresh', 'success', {p}, {p},"
         " '127.0.0.1', 'bench', '{{}}', {p})")
#: A signed-in user's authorization: the nonce not used before, the browser's session with
#: its user, the app account's status, the second-factor facts; then the code and its audit row.
AUTHORIZE_READS = (
    ("SELECT code_hash FROM authorization_codes WHERE client_id = {p} AND nonce = {p} LIMIT 1",
     ("erp", "nonce")),
    ("SELECT sso_sessions.id, sso_sessions.auth_time, sso_sessions.expires_at, users.id,"
     " users.subject, users.status FROM sso_sessions JOIN users ON users.id ="
     " sso_sessions.user_id WHERE sso_sessions.token_hash = {p}", ("session-hash",)),
    ("SELECT status FROM app_accounts WHERE user_id = {p} AND client_id = {p}", (1, "erp")),
    ("SELECT EXISTS (SELECT 1 FROM app_accounts WHERE user_id = {p} AND status = 'mfa')",
     (1,)),
)
CODE = ("INSERT INTO authorization_codes (code_hash, grant_id, client_id, user_id, nonce,"
        " redirect_uri, scope, code_challenge, session_id, created_at, expires_at) VALUES ({p},"
        " {p}, 'erp', 1, {p}, 'https://erp.example.com/callback', 'openid profile email', {p},"
        " 's1', {p}, {p})")
NEW_TOKEN = ("INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, session_id,"
             " scope, created_at, expires_at, answer) VALUES ({p}, {p}, {p}, {p}, 's1', {p},"
             " {p}, {p}, {p})")


def cpu_per_call(call: Callable[[], Any], count: int, backend: int | None = None) -> float:
    """CPU-µs per call of ``call`` (this process's, plus the backend process's if given)."""
    for _ in range(min(200, count)):
        call()
    started, backend_started = time.process_time(), _process_cpu(backend)
    for _ in range(count):
        call()
    spent = time.process_time() - started + _process_cpu(backend) - backend_started
    return spent / count * 1e6


def _process_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def signatures(count: int) -> dict[str, float]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    message = secrets.token_bytes(400)  # about the signing input of one of our tokens
    signature = ec_key.sign(message, ec.ECDSA(hashes.SHA256()))
    public = ec_key.public_key()
    return {
        "RS256 signature": cpu_per_call(
            lambda: rsa_key.sign(message, padding.PKCS1v15(), hashes.SHA256()), count),
        "ES256 signature": cpu_per_call(
            lambda: ec_key.sign(message, ec.ECDSA(hashes.SHA256())), count),
        "ES256 check": cpu_per_call(
            lambda: public.verify(signature, message, ec.ECDSA(hashes.SHA256())), count),
    }


class Store:
    """One database with the tables above, seeded with a user and unused refresh tokens."""

    placeholder = "?"
    serial = "INTEGER PRIMARY KEY AUTOINCREMENT"
    timestamp = "TIMESTAMP"
    backend: int | None = None

    def __init__(self, connection: Any, tokens: int) -> None:
        self.connection = connection
        for statement in SCHEMA.format(serial=self.serial, time=self.timestamp).split(";"):
            if statement.strip():
                self.connection.execute(statement)
        now = time.time()
        self.execute("INSERT INTO users (subject, username, status) VALUES ({p}, 'alice',"
                     " 'active')", ("s-alice",))
        self.execute("INSERT INTO clients (client_id) VALUES ('erp')", ())
        self.execute("INSERT INTO sso_sessions (id, token_hash, user_id, auth_time, expires_at)"
                     " VALUES ('s1', 'session-hash', 1, {p}, {p})",
                     (self.at(now), self.at(now + 3600)))
        self.execute("INSERT INTO app_accounts (user_id, client_id, status) VALUES"
                     " (1, 'erp', 'active')", ())
        self.unused = [secrets.token_hex(32) for _ in range(tokens)]
        for token in self.unused:
            self.execute(NEW_TOKEN, (token, "family", "erp", 1, "openid", self.at(now),
                                     self.at(now + 3600), None))
        self.commit()

    def at(self, seconds: float) -> Any:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))

    def execute(self, sql: str, params: tuple[Any, ...]) -> Any:
        return self.connection.execute(sql.format(p=self.placeholder), params)

    def commit(self) -> None:
        self.connection.commit()

    def read(self) -> None:
        self.execute(READ, ("jti-" + "x" * 20, "s-alice")).fetchall()

    def authorize(self) -> None:
        now = time.time()
        for sql, params in AUTHORIZE_READS:
            self.execute(sql, params).fetchall()
        self.execute(CODE, (secrets.token_hex(32), secrets.token_urlsafe(16),
                            secrets.token_urlsafe(8),
                            secrets.token_urlsafe(32), self.at(now), self.at(now + 60)))
        self.execute(AUDIT, (self.at(now), 1, "erp", secrets.token_hex(8)))
        self.commit()

    def refresh(self) -> None:
        now = time.time()
        successor = secrets.token_hex(32)
        claimed = self.execute(CLAIM, (self.at(now), successor, self.unused.pop(),
                                       self.at(now))).fetchall()
        _, family, client, user, scope, status = claimed[0]
        assert status == "active"  # noqa: S101 - the claim read the user along
        self.execute(AUDIT, (self.at(now), user, client, secrets.token_hex(8)))
        self.execute(NEW_TOKEN, (successor, family, client, user, scope, self.at(now),
                                 self.at(now + 3600), "sealed answer " * 20))
        self.commit()


class SQLiteStore(Store):
    def __init__(self, path: Path, tokens: int) -> None:
        connection = sqlite3.connect(path, isolation_level="")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        super().__init__(connection, tokens)
        self.reader = sqlite3.connect(path, isolation_level=None)  # autocommit

    def read(self) -> None:
        self.reader.execute(READ.format(p="?"), ("jti-" + "x" * 20, "s-alice")).fetchall()


class PostgresStore(Store):
    placeholder = "%s"
    serial = "SERIAL PRIMARY KEY"
    timestamp = "TIMESTAMP WITHOUT TIME ZONE"

    def __init__(self, url: str, tokens: int) -> None:
        import psycopg  # noqa: PLC0415 - only with --database

        super().__init__(psycopg.connect(url), tokens)
        self.reader = psycopg.connect(url, autocommit=True)

    def read(self) -> None:
        self.reader.execute(READ.format(p="%s"), ("jti-" + "x" * 20, "s-alice")).fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", help="a PostgreSQL server's URL (a scratch database is"
                        " made there and dropped)")
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    for name, cost in signatures(args.count).items():
        print(f"{name:<56} {cost:8.1f} CPU-µs")
    with tempfile.TemporaryDirectory(prefix="sso-floor-") as folder:
        sqlite = SQLiteStore(Path(folder) / "floor.sqlite3", args.count + 400)
        _report("SQLite", sqlite, args.count)
    if args.database:
        _postgres(args.database, args.count)


def _postgres(url: str, count: int) -> None:
    import psycopg  # noqa: PLC0415 - only with --database

    name = f"sso_floor_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        store = PostgresStore(urlsplit(url)._replace(path=f"/{name}").geturl(), count + 400)
        store.backend = store.connection.info.backend_pid
        _report("PostgreSQL, client + backend", store, count,
                reader_backend=store.reader.info.backend_pid)
        store.connection.close()
        store.reader.close()
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _report(label: str, store: Store, count: int, reader_backend: int | None = None) -> None:
    read = cpu_per_call(store.read, count, reader_backend)
    refresh = cpu_per_call(store.refresh, count, store.backend)
    authorize = cpu_per_call(store.authorize, count, store.backend)
    print(f"{label + ': indexed read, autocommit':<56} {read:8.1f} CPU-µs")
    print(f"{label + ': refresh writes + commit':<56} {refresh:8.1f} CPU-µs")
    print(f"{label + ': authorization reads, writes + commit':<56} {authorize:8.1f} CPU-µs")


if __name__ == "__main__":
    main()
