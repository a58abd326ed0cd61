"""The Python floor (issue 15): the code flow and refresh with nothing but the work they must
do, served by the provider's own server command.

``bench/run.py --targets lean`` runs it beside ours and the references. It is a measuring
stick, never a provider: one WSGI function, no framework, no ORM, no Authlib, no logging, no
metrics, no flow steps. What it keeps is what the provider guarantees and the reference
does too, each as cheaply as CPython allows:

* the client's secret checked (one SHA-256) and its redirect URI matched exactly, PKCE (S256);
* on ``/authorize``: the browser's session and its user read and checked, the nonce not used
  before, the app account's status and the second-factor facts (the flow's reads), then the
  code and its audit row written and committed (the statements of
  ``bench/driver_floor.py``);
* on ``/token``: the code or the refresh token claimed once (``UPDATE ... RETURNING``), the
  new refresh token and the audit row written, one commit, an RS256 ID token and an ES256
  access token signed with ``cryptography``, JSON with ``no-store``;
* on ``/userinfo``: the access token's ES256 signature checked and one read (revoked? the
  user's status?), as the provider reads on every use.

On SQLite the writing requests take one lock, as the provider's turns do (so nothing waits on
SQLite's busy handler). On PostgreSQL it takes the fewest round trips (one statement per code
exchange or refresh, two per authorization); ``LEAN_STEPS=1`` runs a statement per step in a
transaction as the provider does, and ``LEAN_STEPS=tail`` the same with the last writes sent
in the COMMIT's message. What a workload costs here is the least a CPython provider with these
guarantees can cost under granian; the difference to ours is our code, the difference to the
reference is the language's and the server's.

    LEAN_DATABASE=sqlite:///path | postgresql://...  LEAN_KEYS=folder  LEAN_ISSUER=http://...
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import json
import os
import queue
import secrets
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))

import driver_floor  # noqa: E402

COOKIE = "lean_session"
CLIENT_ID = "bench"
REDIRECT_URI = "http://127.0.0.1:9/callback"
ALLOWED_SCOPES = ("openid", "profile", "email", "offline_access", "api")
CODE_TTL, ACCESS_TTL, REFRESH_TTL = 60, 600, 86_400

#: The provider's tables, cut to the columns these statements touch, with all their indexes.
SCHEMA = driver_floor.SCHEMA
SESSION_AND_USER = (
    "SELECT sso_sessions.id, sso_sessions.auth_time, sso_sessions.expires_at,"
    " sso_sessions.ended_at, users.id, users.subject, users.status FROM sso_sessions JOIN users"
    " ON users.id = sso_sessions.user_id WHERE sso_sessions.token_hash = {p}")
NONCE_USED = "SELECT code_hash FROM authorization_codes WHERE client_id = {p} AND nonce = {p}"
APP_ACCOUNT = "SELECT status FROM app_accounts WHERE user_id = {p} AND client_id = {p}"
SECOND_FACTOR = ("SELECT EXISTS (SELECT 1 FROM app_accounts WHERE user_id = {p}"
                 " AND status = 'mfa')")
NEW_CODE = ("INSERT INTO authorization_codes (code_hash, grant_id, client_id, user_id, nonce,"
            " redirect_uri, scope, code_challenge, session_id, created_at, expires_at) VALUES"
            " ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})")
CLAIM_CODE = (
    "UPDATE authorization_codes SET consumed_at = {p} WHERE code_hash = {p}"
    " AND consumed_at IS NULL AND expires_at > {p} RETURNING client_id, user_id, nonce,"
    " redirect_uri, scope, code_challenge, session_id, grant_id,"
    " (SELECT subject FROM users WHERE users.id = authorization_codes.user_id),"
    " (SELECT status FROM users WHERE users.id = authorization_codes.user_id),"
    " (SELECT auth_time FROM sso_sessions WHERE sso_sessions.id ="
    " authorization_codes.session_id)")
CLAIM_REFRESH = (
    "UPDATE refresh_tokens SET used_at = {p}, successor = {p} WHERE token_hash = {p}"
    " AND used_at IS NULL AND revoked_at IS NULL AND expires_at > {p} RETURNING family_id,"
    " client_id, user_id, scope, session_id,"
    " (SELECT subject FROM users WHERE users.id = refresh_tokens.user_id),"
    " (SELECT status FROM users WHERE users.id = refresh_tokens.user_id)")
NEW_REFRESH = ("INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id,"
               " session_id, scope, created_at, expires_at) VALUES ({p}, {p}, {p}, {p}, {p},"
               " {p}, {p}, {p})")
AUDIT = ("INSERT INTO audit_events (at, event, outcome, user_id, client_id, ip, user_agent,"
         " details, request_id) VALUES ({p}, {p}, 'success', {p}, {p}, {p}, {p}, '{{}}', {p})")
USER_READ = ("SELECT EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = {p}),"
             " users.username, users.email, users.status FROM (SELECT 1 AS one) AS one"
             " LEFT OUTER JOIN users ON users.subject = {p}")

#: On PostgreSQL every round trip costs the client and the backend about 100 CPU-µs, so the
#: floor there takes the fewest: one read and one write statement for an authorization, one
#: statement for a code exchange or a refresh (its checks in the claim's WHERE clause, the
#: writes in data-modifying CTEs; a single statement is its own transaction).
PG_AUTHORIZE_READ = (
    "SELECT sso_sessions.id, sso_sessions.expires_at, sso_sessions.ended_at, users.id,"
    " users.status, (SELECT status FROM app_accounts WHERE app_accounts.user_id = users.id"
    " AND app_accounts.client_id = %(client)s), EXISTS (SELECT 1 FROM app_accounts WHERE"
    " app_accounts.user_id = users.id AND app_accounts.status = 'mfa'), EXISTS (SELECT 1"
    " FROM authorization_codes WHERE client_id = %(client)s AND nonce = %(nonce)s)"
    " FROM sso_sessions JOIN users ON users.id = sso_sessions.user_id"
    " WHERE sso_sessions.token_hash = %(session)s")
PG_AUTHORIZE_WRITE = (
    "WITH code AS (INSERT INTO authorization_codes (code_hash, grant_id, client_id, user_id,"
    " nonce, redirect_uri, scope, code_challenge, session_id, created_at, expires_at) VALUES"
    " (%(code)s, %(grant)s, %(client)s, %(user)s, %(nonce)s, %(redirect)s, %(scope)s,"
    " %(challenge)s, %(sid)s, %(now)s, %(expires)s)) INSERT INTO audit_events (at, event,"
    " outcome, user_id, client_id, ip, user_agent, details, request_id) VALUES (%(now)s,"
    " 'authorize.code', 'success', %(user)s, %(client)s, %(ip)s, %(agent)s, '{}',"
    " %(request)s)")
_PG_ISSUE = (
    " fresh AS (INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id,"
    " session_id, scope, created_at, expires_at) SELECT %(token)s, family, %(client)s,"
    " user_id, session_id, scope, %(now)s, %(expires)s FROM claimed),"
    " audited AS (INSERT INTO audit_events (at, event, outcome, user_id, client_id, ip,"
    " user_agent, details, request_id) SELECT %(now)s, %(event)s, 'success', user_id,"
    " %(client)s, %(ip)s, %(agent)s, '{}', %(request)s FROM claimed)"
    " SELECT (SELECT subject FROM users WHERE users.id = claimed.user_id), scope, session_id,"
    " nonce, (SELECT auth_time FROM sso_sessions WHERE sso_sessions.id = claimed.session_id)"
    " FROM claimed")
PG_EXCHANGE = (  # constant text only: the values are the driver's parameters
    "WITH claimed AS (UPDATE authorization_codes SET consumed_at = %(now)s WHERE code_hash ="  # noqa: S608
    " %(presented)s AND consumed_at IS NULL AND expires_at > %(now)s AND client_id ="
    " %(client)s AND redirect_uri = %(redirect)s AND code_challenge = %(digest)s AND EXISTS"
    " (SELECT 1 FROM users WHERE users.id = authorization_codes.user_id AND users.status ="
    " 'active') RETURNING user_id, nonce, scope, session_id, grant_id AS family),"
    f"{_PG_ISSUE}")
PG_ROTATE = (
    "WITH claimed AS (UPDATE refresh_tokens SET used_at = %(now)s, successor = %(token)s"  # noqa: S608
    " WHERE token_hash = %(presented)s AND used_at IS NULL AND revoked_at IS NULL AND"
    " expires_at > %(now)s AND client_id = %(client)s AND EXISTS (SELECT 1 FROM users WHERE"
    " users.id = refresh_tokens.user_id AND users.status = 'active') RETURNING user_id,"
    f" NULL AS nonce, scope, session_id, family_id AS family),{_PG_ISSUE}")

SECURITY_HEADERS = [
    ("Cache-Control", "no-store"), ("Pragma", "no-cache"),
    ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _at(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


class Database:
    """Connections handed out one per request (a queue of idle ones), SQLite or PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite:///")
        self.placeholder = "?" if self.sqlite else "%s"
        self.idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        #: SQLite's writers take turns, as the provider's hot requests do.
        self.turn = threading.Lock() if self.sqlite else None
        self.statements: dict[str, str] = {}
        #: ``LEAN_STEPS=1``: a statement per step in a transaction on PostgreSQL too, as the
        #: provider does (and as SQLite, where a statement costs no round trip, always does).
        self.fewest = not self.sqlite and os.environ.get("LEAN_STEPS") not in ("1", "tail")
        #: ``LEAN_STEPS=tail``: as ``1``, but the writes whose results nothing reads wait for
        #: the COMMIT and go with it in one message (bound by the driver on the client).
        self.tail = not self.sqlite and os.environ.get("LEAN_STEPS") == "tail"

    def sql(self, template: str) -> str:
        found = self.statements.get(template)
        if found is None:
            found = self.statements[template] = template.format(p=self.placeholder)
        return found

    def connect(self) -> Any:
        if self.sqlite:
            connection = sqlite3.connect(self.url[len("sqlite:///"):], isolation_level=None,
                                         check_same_thread=False)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                           "busy_timeout=5000"):
                connection.execute(f"PRAGMA {pragma}")
            return connection
        import psycopg  # noqa: PLC0415 - only on PostgreSQL

        return psycopg.connect(self.url, autocommit=True)

    def take(self) -> Any:
        try:
            return self.idle.get_nowait()
        except queue.Empty:
            return self.connect()

    def give(self, connection: Any) -> None:
        self.idle.put(connection)

    def read(self, template: str, params: tuple[Any, ...]) -> list[Any]:
        connection = self.take()
        try:
            return connection.execute(self.sql(template), params).fetchall()  # type: ignore
        finally:
            self.give(connection)

    def one(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """One statement in autocommit, on PostgreSQL: its own transaction, one round trip."""
        connection = self.take()
        try:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if cursor.description is not None else []
        finally:
            self.give(connection)

    def transaction(self, work: Any) -> Any:
        """Run ``work(execute)`` in one transaction, committed unless it raised."""
        connection = self.take()
        if self.turn is not None:
            self.turn.acquire()
        try:
            connection.execute("BEGIN IMMEDIATE" if self.sqlite else "BEGIN")
            waiting: list[tuple[str, tuple[Any, ...]]] = []

            def execute(template: str, params: tuple[Any, ...]) -> list[Any]:
                if self.tail and template.startswith("INSERT"):
                    waiting.append((self.sql(template), params))
                    return []
                cursor = connection.execute(self.sql(template), params)
                return cursor.fetchall() if cursor.description is not None else []

            try:
                result = work(execute)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            if waiting:
                from psycopg import ClientCursor  # noqa: PLC0415 - only on PostgreSQL

                ClientCursor(connection).execute(
                    "; ".join([sql for sql, _ in waiting] + ["COMMIT"]),
                    tuple(value for _, params in waiting for value in params))
            else:
                connection.execute("COMMIT")
            return result
        finally:
            if self.turn is not None:
                self.turn.release()
            self.give(connection)


class Refused(Exception):
    def __init__(self, status: str, error: str) -> None:
        super().__init__(error)
        self.status, self.error = status, error


class Lean:
    """The WSGI application."""

    def __init__(self, issuer: str, database: Database, keys: Path) -> None:
        self.issuer, self.db = issuer, database
        self.rsa = serialization.load_pem_private_key((keys / "rsa.pem").read_bytes(), None)
        self.ec = serialization.load_pem_private_key((keys / "ec.pem").read_bytes(), None)
        self.ec_public = self.ec.public_key()  # type: ignore[union-attr]
        self.rsa_header = _b64(b'{"alg":"RS256","kid":"rsa","typ":"JWT"}')
        self.ec_header = _b64(b'{"alg":"ES256","kid":"ec","typ":"at+jwt"}')
        client = json.loads((keys / "client.json").read_text())
        self.client_secret_hash = client["secret_hash"]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        try:
            if path == "/authorize" and method == "GET":
                location = self.authorize(environ)
                start_response("302 Found", [("Location", location), *SECURITY_HEADERS,
                                             ("Content-Length", "0")])
                return [b""]
            if path == "/token" and method == "POST":
                body = self.token(environ)
            elif path == "/userinfo" and method == "GET":
                body = self.userinfo(environ)
            elif path == "/.well-known/openid-configuration":
                body = {"issuer": self.issuer}
            else:
                raise Refused("404 Not Found", "not_found")
            status = "200 OK"
        except Refused as refused:
            status, body = refused.status, {"error": refused.error}
        data = json.dumps(body, separators=(",", ":")).encode()
        start_response(status, [("Content-Type", "application/json"), *SECURITY_HEADERS,
                                ("Content-Length", str(len(data)))])
        return [data]

    # The requests.

    def authorize(self, environ: dict[str, Any]) -> str:
        params = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        if params.get("client_id") != CLIENT_ID or params.get("redirect_uri") != REDIRECT_URI:
            raise Refused("400 Bad Request", "invalid_request")
        scopes = [s for s in params.get("scope", "").split() if s in ALLOWED_SCOPES]
        challenge, nonce = params.get("code_challenge"), params.get("nonce")
        if (params.get("response_type") != "code" or "openid" not in scopes or not challenge
                or params.get("code_challenge_method") != "S256"):
            raise Refused("400 Bad Request", "invalid_request")
        secret = _cookie(environ.get("HTTP_COOKIE", ""), COOKIE)
        if not secret:
            raise Refused("401 Unauthorized", "login_required")
        now = time.time()
        code = secrets.token_urlsafe(32)
        remote = environ.get("REMOTE_ADDR", ""), environ.get("HTTP_USER_AGENT", "")[:255]
        if self.db.fewest:
            self._authorize_in_two(secret, nonce, challenge, scopes, code, now, remote)
        else:
            self._authorize_in_steps(secret, nonce, challenge, scopes, code, now, remote)
        answer = {"code": code, "iss": self.issuer}
        if "state" in params:
            answer["state"] = params["state"]
        return f"{REDIRECT_URI}?{urlencode(answer)}"

    def _authorize_in_two(self, secret: str, nonce: str | None, challenge: str,
                          scopes: list[str], code: str, now: float,
                          remote: tuple[str, str]) -> None:
        found = self.db.one(PG_AUTHORIZE_READ, {"client": CLIENT_ID, "nonce": nonce,
                                                "session": _hash(secret)})
        if not found:
            raise Refused("401 Unauthorized", "login_required")
        session_id, expires_at, ended_at, user_id, status, account, _mfa, nonce_used = found[0]
        if ended_at is not None or str(expires_at) <= _at(now) or status != "active":
            raise Refused("401 Unauthorized", "login_required")
        if account != "active":
            raise Refused("403 Forbidden", "access_denied")
        if nonce and nonce_used:
            raise Refused("400 Bad Request", "invalid_request")
        self.db.one(PG_AUTHORIZE_WRITE, {
            "code": _hash(code), "grant": secrets.token_urlsafe(16), "client": CLIENT_ID,
            "user": user_id, "nonce": nonce, "redirect": REDIRECT_URI, "scope": " ".join(scopes),
            "challenge": challenge, "sid": session_id, "now": _at(now),
            "expires": _at(now + CODE_TTL), "ip": remote[0], "agent": remote[1],
            "request": secrets.token_hex(8)})

    def _authorize_in_steps(self, secret: str, nonce: str | None, challenge: str,
                            scopes: list[str], code: str, now: float,
                            remote: tuple[str, str]) -> None:
        def work(execute: Any) -> None:
            if nonce and execute(NONCE_USED, (CLIENT_ID, nonce)):
                raise Refused("400 Bad Request", "invalid_request")
            found = execute(SESSION_AND_USER, (_hash(secret),))
            if not found:
                raise Refused("401 Unauthorized", "login_required")
            session_id, _auth_time, expires_at, ended_at, user_id, _subject, status = found[0]
            if ended_at is not None or str(expires_at) <= _at(now) or status != "active":
                raise Refused("401 Unauthorized", "login_required")
            account = execute(APP_ACCOUNT, (user_id, CLIENT_ID))
            if not account or account[0][0] != "active":
                raise Refused("403 Forbidden", "access_denied")
            execute(SECOND_FACTOR, (user_id,))
            execute(NEW_CODE, (_hash(code), secrets.token_urlsafe(16), CLIENT_ID, user_id,
                               nonce, REDIRECT_URI, " ".join(scopes), challenge, session_id,
                               _at(now), _at(now + CODE_TTL)))
            execute(AUDIT, (_at(now), "authorize.code", user_id, CLIENT_ID, *remote,
                            secrets.token_hex(8)))

        self.db.transaction(work)

    def token(self, environ: dict[str, Any]) -> dict[str, Any]:
        self._authenticate(environ.get("HTTP_AUTHORIZATION", ""))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = dict(parse_qsl(environ["wsgi.input"].read(length).decode()))
        grant = form.get("grant_type")
        now = time.time()
        refresh_token = secrets.token_urlsafe(32)
        remote = environ.get("REMOTE_ADDR", ""), environ.get("HTTP_USER_AGENT", "")[:255]
        def issue(execute: Any, event: str, family: str, client: str, user_id: int,
                  session_id: str | None, scope: str) -> None:
            """The new refresh token's row and the audit row, in the claim's transaction."""
            execute(NEW_REFRESH, (_hash(refresh_token), family, client, user_id, session_id,
                                  scope, _at(now), _at(now + REFRESH_TTL)))
            execute(AUDIT, (_at(now), event, user_id, client, *remote, secrets.token_hex(8)))

        if self.db.fewest and grant in ("authorization_code", "refresh_token"):
            exchange = grant == "authorization_code"
            claimed = self.db.one(PG_EXCHANGE if exchange else PG_ROTATE, {
                "now": _at(now), "client": CLIENT_ID, "token": _hash(refresh_token),
                "expires": _at(now + REFRESH_TTL), "ip": remote[0], "agent": remote[1],
                "request": secrets.token_hex(8),
                "event": "token.issue" if exchange else "token.refresh",
                "presented": _hash(form.get("code" if exchange else "refresh_token", "")),
                "redirect": form.get("redirect_uri"),
                "digest": _b64(hashlib.sha256(form.get("code_verifier", "").encode()).digest()),
            })
            if not claimed:
                raise Refused("400 Bad Request", "invalid_grant")
            subject, scope, session_id, nonce, auth_time = claimed[0]
            if not exchange:
                auth_time = None
        elif grant == "authorization_code":
            verifier = form.get("code_verifier", "")

            def exchange(execute: Any) -> tuple[Any, ...]:
                claimed = execute(CLAIM_CODE, (_at(now), _hash(form.get("code", "")), _at(now)))
                if not claimed:
                    raise Refused("400 Bad Request", "invalid_grant")
                (client, user_id, nonce, redirect_uri, scope, challenge, session_id, grant_id,
                 subject, status, auth_time) = claimed[0]
                digest = _b64(hashlib.sha256(verifier.encode()).digest())
                if (client != CLIENT_ID or redirect_uri != form.get("redirect_uri")
                        or not hmac.compare_digest(digest, challenge) or status != "active"):
                    raise Refused("400 Bad Request", "invalid_grant")
                issue(execute, "token.issue", grant_id, client, user_id, session_id, scope)
                return subject, scope, session_id, nonce, auth_time

            subject, scope, session_id, nonce, auth_time = self.db.transaction(exchange)
        elif grant == "refresh_token":
            presented = form.get("refresh_token", "")

            def rotate(execute: Any) -> tuple[Any, ...]:
                claimed = execute(CLAIM_REFRESH, (_at(now), _hash(refresh_token),
                                                  _hash(presented), _at(now)))
                if not claimed:
                    raise Refused("400 Bad Request", "invalid_grant")
                family, client, user_id, scope, session_id, subject, status = claimed[0]
                if client != CLIENT_ID or status != "active":
                    raise Refused("400 Bad Request", "invalid_grant")
                issue(execute, "token.refresh", family, client, user_id, session_id, scope)
                return subject, scope, session_id, None, None

            subject, scope, session_id, nonce, auth_time = self.db.transaction(rotate)
        else:
            raise Refused("400 Bad Request", "unsupported_grant_type")
        issued = int(now)
        access = self._sign_ec({"iss": self.issuer, "sub": subject, "aud": CLIENT_ID,
                                "client_id": CLIENT_ID, "scope": scope, "iat": issued,
                                "exp": issued + ACCESS_TTL, "jti": secrets.token_urlsafe(16)})
        claims = {"iss": self.issuer, "sub": subject, "aud": CLIENT_ID, "iat": issued,
                  "exp": issued + ACCESS_TTL, "sid": session_id,
                  "at_hash": _b64(hashlib.sha256(access.encode()).digest()[:16])}
        if nonce:
            claims["nonce"] = nonce
        if auth_time is not None:
            claims["auth_time"] = _epoch(auth_time)
        return {"access_token": access, "token_type": "Bearer", "expires_in": ACCESS_TTL,
                "scope": scope, "refresh_token": refresh_token, "id_token": self._sign_rsa(claims)}

    def userinfo(self, environ: dict[str, Any]) -> dict[str, Any]:
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        if not authorization.startswith("Bearer "):
            raise Refused("401 Unauthorized", "invalid_token")
        claims = self._verify_ec(authorization[7:])
        revoked, username, email, status = self.db.read(USER_READ,
                                                         (claims["jti"], claims["sub"]))[0]
        if revoked or status != "active":
            raise Refused("401 Unauthorized", "invalid_token")
        return {"sub": claims["sub"], "preferred_username": username, "email": email}

    # Helpers.

    def _authenticate(self, header: str) -> None:
        if not header.startswith("Basic "):
            raise Refused("401 Unauthorized", "invalid_client")
        client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        if unquote(client_id) != CLIENT_ID or not hmac.compare_digest(
                _hash(unquote(secret)), self.client_secret_hash):
            raise Refused("401 Unauthorized", "invalid_client")

    def _sign_rsa(self, claims: dict[str, Any]) -> str:
        signing_input = f"{self.rsa_header}.{_b64(json.dumps(claims).encode())}"
        signature = self.rsa.sign(signing_input.encode(), padding.PKCS1v15(),  # type: ignore
                                  hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def _sign_ec(self, claims: dict[str, Any]) -> str:
        signing_input = f"{self.ec_header}.{_b64(json.dumps(claims).encode())}"
        der = self.ec.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))  # type: ignore
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def _verify_ec(self, token: str) -> dict[str, Any]:
        try:
            header, payload, signature = token.split(".")
            raw = _b64decode(signature)
            self.ec_public.verify(
                encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                     int.from_bytes(raw[32:], "big")),
                f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
            claims: dict[str, Any] = json.loads(_b64decode(payload))
        except Exception:  # noqa: BLE001 - any malformed or forged token is the same refusal
            raise Refused("401 Unauthorized", "invalid_token") from None
        if header != self.ec_header or claims.get("iss") != self.issuer or \
                claims.get("exp", 0) <= time.time():
            raise Refused("401 Unauthorized", "invalid_token")
        return claims


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _epoch(value: Any) -> int:
    """Seconds since the epoch of a UTC time as the database hands it back."""
    if isinstance(value, str):
        return calendar.timegm(time.strptime(value[:19], "%Y-%m-%d %H:%M:%S"))
    return calendar.timegm(value.timetuple())


def seed(database_url: str, keys: Path) -> dict[str, str]:
    """Make the tables, the signing keys, the client and a signed-in user; return what the
    workloads need (``bench/run.py``)."""
    database = Database(database_url)
    connection = database.connect()
    serial = "INTEGER PRIMARY KEY AUTOINCREMENT" if database.sqlite else "SERIAL PRIMARY KEY"
    moment = "TIMESTAMP" if database.sqlite else "TIMESTAMP WITHOUT TIME ZONE"
    for statement in SCHEMA.format(serial=serial, time=moment).split(";"):
        if statement.strip():
            connection.execute(statement)
    secret, session_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = time.time()

    def run(template: str, params: tuple[Any, ...]) -> None:
        connection.execute(database.sql(template), params)

    run("INSERT INTO users (subject, username, email, status) VALUES ({p}, {p}, {p}, 'active')",
        ("s-bench", "bench-user", "bench-user@example.com"))
    run("INSERT INTO clients (client_id) VALUES ({p})", (CLIENT_ID,))
    run("INSERT INTO sso_sessions (id, token_hash, user_id, auth_time, expires_at) VALUES"
        " ('s1', {p}, 1, {p}, {p})", (_hash(session_secret), _at(now), _at(now + 86_400)))
    run("INSERT INTO app_accounts (user_id, client_id, status) VALUES (1, {p}, 'active')",
        (CLIENT_ID,))
    if database.sqlite:
        connection.commit()
    connection.close()
    keys.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, \
        serialization.NoEncryption()
    (keys / "rsa.pem").write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(*pem))
    (keys / "ec.pem").write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(*pem))
    (keys / "client.json").write_text(json.dumps({"secret_hash": _hash(secret)}))
    return {"client_id": CLIENT_ID, "client_secret": secret,
            "cookie": f"{COOKIE}={session_secret}"}


def _app() -> Lean | None:
    if "LEAN_DATABASE" not in os.environ:
        return None
    return Lean(os.environ["LEAN_ISSUER"], Database(os.environ["LEAN_DATABASE"]),
                Path(os.environ["LEAN_KEYS"]))


app = _app()
