"""SQL statements per token request: the hot paths stay as lean as the benchmark made them.

Counts, not timings: each request's statements are listed, so a regression names itself.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.conftest import Flow, basic

SAVEPOINTS = ("SAVEPOINT ", "RELEASE SAVEPOINT ", "ROLLBACK TO SAVEPOINT ")


@contextmanager
def statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.startswith(SAVEPOINTS):  # the test's own rollback, not the request's
            return
        seen.append(" ".join(statement.split()))

    event.listen(Engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", note)


@contextmanager
def sessions_made() -> Iterator[list[object]]:
    """The ORM sessions made inside the block (``db.session`` makes one per app context on
    first use; a request that needs none should not pay for making and removing it)."""
    from sso.extensions import db

    made: list[object] = []
    registry = db.session.registry
    make = registry.createfunc

    def counted() -> object:
        made.append(session := make())
        return session

    registry.createfunc = counted
    try:
        yield made
    finally:
        registry.createfunc = make


def _without_roles(seen: list[str]) -> list[str]:
    """The ``roles`` scope adds the user's roles in the app, a lookup of its own."""
    return [s for s in seen if "app_roles" not in s]


def _tokens(flow: Flow) -> dict[str, Any]:
    code = flow.authorize()["code"]
    response = flow.token(code)
    assert response.status_code == 200
    return response.get_json()  # type: ignore[no-any-return]


def test_client_credentials_reads_nothing_once_the_client_is_cached(
        client: FlaskClient, make_client: Any) -> None:
    service = make_client("Batch", grant_types=["client_credentials"], scope="api")
    pair = base64.b64encode(f"{service.client_id}:{service.secret}".encode()).decode()
    headers = {"Authorization": "Basic " + pair}
    assert client.post("/token", data={"grant_type": "client_credentials"},
                       headers=headers).status_code == 200
    with statements() as seen:
        response = client.post("/token", data={"grant_type": "client_credentials"},
                               headers=headers)
    assert response.status_code == 200
    assert seen == []


def test_refresh_claims_and_loads_in_one_statement(flow: Flow, app: Any) -> None:
    refresh = _tokens(flow)["refresh_token"]
    with statements() as seen:
        response = flow.http.post("/token", data={"grant_type": "refresh_token",
                                                  "refresh_token": refresh},
                                  headers=basic(flow.app_client))
    assert response.status_code == 200
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        assert seen[0].startswith("UPDATE refresh_tokens SET")
        # claim (naming the successor, reading the user and the session's state along),
        # audit event, new refresh token with the answer sealed for the reuse grace (+ roles)
        assert len(_without_roles(seen)) == 3, seen
        assert "users.subject" in seen[0] and "sso_sessions.expires_at" in seen[0], seen[0]
        assert _without_roles(seen)[-1].startswith("INSERT INTO refresh_tokens"), seen
        return
    # PostgreSQL: the token read with the user and the session's state, then one statement
    # that claims it and writes the audit event and the new token (+ roles): no BEGIN, no
    # COMMIT, since each is a transaction of its own.
    assert len(_without_roles(seen)) == 2, seen
    assert seen[0].startswith("SELECT refresh_tokens.id"), seen[0]
    assert "users.subject" in seen[0] and "sso_sessions.expires_at" in seen[0], seen[0]
    rotation = _without_roles(seen)[1]
    assert rotation.startswith("WITH claimed AS (UPDATE refresh_tokens SET"), rotation
    assert "INSERT INTO audit_events" in rotation, rotation
    assert "INSERT INTO refresh_tokens" in rotation, rotation


def test_code_exchange_claims_and_loads_in_one_statement(flow: Flow, app: Any) -> None:
    code = flow.authorize()["code"]
    with statements() as seen:
        assert flow.token(code).status_code == 200
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        assert seen[0].startswith("UPDATE authorization_codes SET")
        assert not any(s.startswith("SELECT authorization_codes") for s in seen), seen
        # claim (reading the user and the session's state along), new refresh token, audit
        # event (+ roles)
        assert len(_without_roles(seen)) == 3, seen
        assert "users.subject" in seen[0], seen[0]
        return
    # PostgreSQL: one statement that claims the code (its checks in the WHERE), reads the
    # user and the session's state along and writes the new refresh token and the audit
    # event (+ roles).
    assert len(_without_roles(seen)) == 1, seen
    exchange = seen[0]
    assert exchange.startswith("WITH code AS (UPDATE authorization_codes SET"), exchange
    assert "users.subject" in exchange, exchange
    assert "INSERT INTO audit_events" in exchange, exchange
    assert "INSERT INTO refresh_tokens" in exchange, exchange


def test_code_exchange_reads_the_roles_once(flow: Flow, app: Any) -> None:
    """Direct and group roles (nested groups included) in one statement, asked for by the
    access token and again by the ID token: read once per response."""
    from sso.admin import groups
    from sso.extensions import db
    from sso.users import service as users

    client_id = flow.app_client.client_id
    with app.app_context():
        users.define_role(client_id, "accountant")
        users.define_role(client_id, "approver")
        users.grant_role(users.find_by_login("alice"), client_id, "approver")
        db.session.commit()
        groups.create(None, name="company")
        groups.create(None, name="finance", parent="company")
        groups.change_member(None, "finance", "alice", True)
        groups.change_role(None, "company", client_id, "accountant", True)
    code = flow.authorize()["code"]
    with statements() as seen:
        response = flow.token(code)
    assert response.status_code == 200
    roles = [s for s in seen if "app_roles" in s]
    assert len(roles) == 1, roles
    payload = response.get_json()["id_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["roles"] == ["accountant", "approver"]


def test_authorize_of_a_signed_in_user_reads_each_fact_once(flow: Flow, app: Any) -> None:
    flow.authorize()  # signs in and activates the app account
    with statements() as seen:
        assert "code" in flow.authorize()
    # The MFA facts read the user's effective roles (groups and their parents: a recursive
    # CTE), so the session's read starts with WITH.
    reads = [s for s in seen if s.startswith(("SELECT", "WITH")) and "INSERT" not in s]
    writes = [s for s in seen if s not in reads]
    # The SSO session with its user and what the steps read (the MFA facts, the app
    # account's status) in one statement; a first-party app: no consent lookup. The
    # nonce's replay check is no read of its own: the statement that writes the code makes
    # it.
    session, = reads
    assert " FROM sso_sessions JOIN users " in session, session
    assert "mfa_totp" in session and "mfa_role_requirements" in session, session
    assert "app_accounts" in session, session
    assert not any(s.startswith("SELECT clients") for s in reads), reads
    assert seen[:len(reads)] == reads, seen  # every read before the first write
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        code, event = writes
        assert code.startswith("INSERT INTO authorization_codes"), code
        assert "NOT (EXISTS (SELECT * FROM authorization_codes" in code, code
        assert event.startswith("INSERT INTO audit_events"), event
        return
    # PostgreSQL: the code, if no code of the client has its nonce, and its audit event, in
    # one statement.
    issue, = writes
    assert issue.startswith("WITH issued AS (INSERT INTO authorization_codes"), issue
    assert "NOT (EXISTS (SELECT * FROM authorization_codes" in issue, issue
    assert "INSERT INTO audit_events" in issue and "FROM issued" in issue, issue


def test_introspection_costs_one_lookup_and_makes_no_orm_session(flow: Flow) -> None:
    access = _tokens(flow)["access_token"]
    with statements() as seen, sessions_made() as made:
        response = flow.http.post("/introspect", data={"token": access},
                                  headers=basic(flow.app_client))
    assert response.get_json()["active"] is True
    assert len(seen) == 1, seen  # revocation and user together
    assert made == []


def test_userinfo_costs_one_lookup_outside_a_transaction_and_no_orm_session(
        flow: Flow) -> None:
    access = _tokens(flow)["access_token"]
    with statements() as seen, sessions_made() as made:
        response = flow.http.get("/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert response.status_code == 200 and response.get_json()["sub"]
    assert "roles" in response.get_json()  # read outside the session too
    # revocation and the user's columns together (+ roles)
    assert len(_without_roles(seen)) == 1, seen
    assert "FROM revoked_access_tokens" in seen[0] and "users.email" in seen[0], seen
    assert made == []


def test_the_pool_hands_out_the_connection_handed_back_last(app: Any) -> None:
    """LIFO: a worker's requests in turn reuse one connection, whose caches are warm (SQLite's
    page cache is lost on a connection another one wrote after; a PostgreSQL connection idle
    past SSO_DB_PING_IDLE is pinged), instead of going round every pooled connection."""
    from sso.extensions import db

    with app.app_context():
        engine = db.engine
        first, second = engine.connect(), engine.connect()
        last_handed_back = second.connection.dbapi_connection
        first.close()
        second.close()
        with engine.connect() as again:
            assert again.connection.dbapi_connection is last_handed_back


def test_the_protocols_statements_are_short_enough_for_psycopg_to_keep_them(
        flow: Flow, app: Any) -> None:
    """psycopg converts a statement's ``%(name)s`` placeholders once and keeps the result,
    but only for a statement of at most ``MAX_CACHED_STATEMENT_LENGTH`` characters and
    ``MAX_CACHED_STATEMENT_PARAMS`` parameters: a longer one is parsed again on every
    execution (about 6 % more instructions per code flow, measured when the code's exchange
    first became one statement). Every statement of a signed-in code flow, a refresh,
    introspection and UserInfo stays under both."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("psycopg's statement cache")
    from psycopg import _queries

    seen: list[tuple[str, int]] = []

    def note(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        if not statement.startswith(SAVEPOINTS):
            seen.append((statement, len(parameters or ())))

    event.listen(Engine, "before_cursor_execute", note)
    try:
        tokens = flow.token(flow.authorize()["code"]).get_json()
        assert flow.http.get("/userinfo", headers={
            "Authorization": f"Bearer {tokens['access_token']}"}).status_code == 200
        assert flow.http.post("/introspect", data={"token": tokens["access_token"]},
                              headers=basic(flow.app_client)).get_json()["active"]
        assert flow.http.post("/token", data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            headers=basic(flow.app_client)).status_code == 200
    finally:
        event.remove(Engine, "before_cursor_execute", note)
    assert any(" ".join(statement.split()).startswith("WITH code AS (UPDATE authorization_codes")
               for statement, _ in seen)
    for statement, parameters in seen:
        assert len(statement) <= _queries.MAX_CACHED_STATEMENT_LENGTH, statement[:200]
        assert parameters <= _queries.MAX_CACHED_STATEMENT_PARAMS, statement[:200]


def test_no_index_but_the_primary_key_can_serve_the_code_exchanges_claim(app: Any) -> None:
    """The claim finds the code by its hash and its client. An index led by either column
    (the nonce's index once was (client_id, nonce)) could take the primary key's place: on a
    table not yet analyzed PostgreSQL priced both alike, took that one, and the prepared
    claim walked every code of the client (migration 0023)."""
    from sqlalchemy import inspect

    from sso.extensions import db

    with app.app_context():
        indexes = inspect(db.engine).get_indexes("authorization_codes")
    assert indexes
    for index in indexes:
        assert index["column_names"][0] not in {"code_hash", "client_id"}, index


def _generic_plan(app: Any, statement: str, parameters: dict[str, Any]) -> str:
    """PostgreSQL's plan of ``statement`` as its prepared statement gets it after five runs:
    a generic plan, made without the values."""
    from psycopg import ClientCursor

    from sso.extensions import db

    names: list[str] = []

    def numbered(found: re.Match[str]) -> str:
        if found.group(1) not in names:
            names.append(found.group(1))
        return f"${names.index(found.group(1)) + 1}"

    prepared = re.sub(r"%\((\w+)\)s", numbered, statement)
    with app.app_context():
        cursor = ClientCursor(db.session.connection().connection.dbapi_connection)
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE planned AS {prepared}")
        try:
            values = ", ".join(["%s"] * len(names))
            cursor.execute(f"EXPLAIN EXECUTE planned({values})",
                           [parameters[name] for name in names])
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE planned")


def _read_through(plan: str, table: str) -> list[str]:
    """The indexes (or ``seq``) through which ``plan`` reads ``table``."""
    return [index or "seq" for index in re.findall(
        rf"(?:(?:Index|Index Only|Bitmap Index) Scan using (\w+)|Seq Scan) on {table}\b", plan)]


def _statement_of(prefix: str, request: Any) -> tuple[str, dict[str, Any]]:
    """The one statement starting with ``prefix`` that ``request()`` runs, and its values;
    the request must succeed."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def note(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        if " ".join(statement.split()).startswith(prefix):
            seen.append((statement, dict(parameters)))

    event.listen(Engine, "before_cursor_execute", note)
    try:
        assert request().status_code == 200
    finally:
        event.remove(Engine, "before_cursor_execute", note)
    found, = seen
    return found


def test_the_code_exchanges_claim_plans_on_primary_keys(flow: Flow, app: Any) -> None:
    """The statement the exchange runs, planned as its prepared statement is after five runs,
    reads ``authorization_codes`` by its primary key only, however many codes the client
    has, and the user by theirs, however many users are active."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("PostgreSQL's planner")
    for _ in range(3):  # more codes of the client than one
        flow.authorize()
    code = flow.authorize()["code"]
    plan = _generic_plan(app, *_statement_of("WITH code AS (UPDATE authorization_codes",
                                             lambda: flow.token(code)))
    assert _read_through(plan, "authorization_codes") == ["pk_authorization_codes"], plan
    assert set(_read_through(plan, "users")) <= {"pk_users", "seq"}, plan


def test_the_refresh_claim_plans_on_unique_keys(flow: Flow, app: Any) -> None:
    """The same for a refresh's one statement: the token by its hash or id, the user by
    theirs."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("PostgreSQL's planner")
    tokens = flow.token(flow.authorize()["code"]).get_json()
    plan = _generic_plan(app, *_statement_of(
        "WITH claimed AS (UPDATE refresh_tokens",
        lambda: flow.http.post("/token", data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            headers=basic(flow.app_client))))
    assert set(_read_through(plan, "refresh_tokens")) <= {
        "pk_refresh_tokens", "uq_refresh_tokens_token_hash"}, plan
    assert _read_through(plan, "refresh_tokens"), plan
    assert set(_read_through(plan, "users")) <= {"pk_users", "seq"}, plan
