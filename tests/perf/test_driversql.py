"""The driver's-SQL path writes what SQLAlchemy's own execution writes: every type's bind
processing (UTC dates, JSON, booleans, None) and the statement's defaults, on both databases."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from sso import audit, driversql
from sso.extensions import db
from sso.oidc.models import AuthorizationCode

_CODES = AuthorizationCode.__table__
_INSERT_CODE = _CODES.insert()
_READ_CODE = select(_CODES).where(_CODES.c.code_hash == bindparam("wanted"))


def _code(code_hash: str, **changes: Any) -> dict[str, Any]:
    now = datetime(2026, 12, 3, 9, 30, 15, 123456, tzinfo=UTC)
    return {"code_hash": code_hash, "grant_id": code_hash[:43], "client_id": "erp",
            "user_id": 1, "redirect_uri": "https://erp.example.com/cb",
            "redirect_uri_given": False, "scope": "openid roles", "nonce": None,
            "code_challenge": "c" * 43, "code_challenge_method": "S256", "session_id": None,
            "auth_time": now - timedelta(minutes=5), "acr": None, "amr": ["pwd", "otp"],
            "created_at": now, "expires_at": now + timedelta(minutes=1), **changes}


@pytest.mark.parametrize("changes", [{}, {"amr": None, "nonce": "n-1", "acr": "mfa"},
                                     {"redirect_uri_given": True, "amr": []}])
def test_a_row_written_as_driver_sql_reads_back_as_one_written_by_sqlalchemy(
        ctx: None, erp: Any, alice: Any, changes: dict[str, Any]) -> None:
    connection = db.session.connection()
    ours = _code("d" * 64, client_id=erp.client_id, user_id=alice.id, **changes)
    theirs = _code("s" * 64, client_id=erp.client_id, user_id=alice.id, **changes)
    driversql.execute(connection, _INSERT_CODE, ours)
    connection.execute(_INSERT_CODE, theirs)
    read_ours = connection.execute(_READ_CODE, {"wanted": "d" * 64}).one()._asdict()
    read_theirs = connection.execute(_READ_CODE, {"wanted": "s" * 64}).one()._asdict()
    for row in (read_ours, read_theirs):
        row.pop("code_hash"), row.pop("grant_id")
    assert read_ours == read_theirs
    assert read_ours["amr"] == changes.get("amr", ["pwd", "otp"])
    assert read_ours["created_at"] == ours["created_at"]


def test_a_read_takes_its_parameters_by_name_or_in_order(ctx: None, erp: Any, alice: Any
                                                          ) -> None:
    connection = db.session.connection()
    driversql.execute(connection, _INSERT_CODE,
                      _code("r" * 64, client_id=erp.client_id, user_id=alice.id))
    rows = driversql.rows(connection, _READ_CODE, {"wanted": "r" * 64})
    assert [row.scope for row in rows] == ["openid roles"]
    assert driversql.rows(connection, _READ_CODE, {"wanted": "x" * 64}) == []


def test_a_driver_error_is_sqlalchemys_and_the_transaction_goes_on(
        ctx: None, erp: Any, alice: Any) -> None:
    """The cursor-level path hands a driver's error over to SQLAlchemy, as its own execution
    does: the caller meets SQLAlchemy's exception (which ``sso.errors`` answers), and a
    savepoint rolled back leaves the transaction usable."""
    connection = db.session.connection()
    row = _code("u" * 64, client_id=erp.client_id, user_id=alice.id)
    driversql.execute(connection, _INSERT_CODE, row)
    savepoint = connection.begin_nested()
    with pytest.raises(IntegrityError):
        driversql.execute(connection, _INSERT_CODE, row)
    savepoint.rollback()
    assert len(driversql.rows(connection, _READ_CODE, {"wanted": "u" * 64})) == 1


def test_a_statement_whose_column_would_take_its_default_is_refused(ctx: None) -> None:
    """A default computed at execution (``created_at``'s ``utcnow``) would not be computed
    on this path: the statement is refused before it runs, not written without it."""
    values = _code("p" * 64)
    del values["created_at"]
    with pytest.raises(ValueError, match="created_at"):
        driversql.execute(db.session.connection(), _INSERT_CODE, values)


def test_an_audit_row_keeps_its_details_and_time(ctx: None) -> None:
    audit.record("driversql.check", client_id="erp", note="中文", count=3)
    row = db.session.scalars(select(audit.AuditEvent)
                             .where(audit.AuditEvent.event == "driversql.check")).one()
    assert row.details == {"note": "中文", "count": 3}
    assert row.at is not None and abs(row.at - datetime.now(UTC)) < timedelta(minutes=1)


def test_rows_come_back_as_sqlalchemy_gives_them(ctx: None, erp: Any, alice: Any) -> None:
    """:func:`driversql.rows` converts each value through its column's type: aware UTC dates
    (SQLite keeps text), JSON lists, booleans, and None left alone."""
    connection = db.session.connection()
    for code_hash, changes in (("a" * 64, {}), ("b" * 64, {"amr": None, "nonce": "n-2",
                                                            "redirect_uri_given": True})):
        driversql.execute(connection, _INSERT_CODE,
                          _code(code_hash, client_id=erp.client_id, user_id=alice.id, **changes))
        ours, = driversql.rows(connection, _READ_CODE, {"wanted": code_hash})
        theirs = connection.execute(_READ_CODE, {"wanted": code_hash}).one()
        assert ours._asdict() == theirs._asdict()
        assert ours.created_at.tzinfo is not None
        assert ours.redirect_uri_given is changes.get("redirect_uri_given", False)
    assert driversql.rows(connection, _READ_CODE, {"wanted": "x" * 64}) == []


def test_rows_of_a_named_type_must_name_the_columns_in_order(ctx: None, erp: Any,
                                                             alice: Any) -> None:
    from collections import namedtuple

    from sso.oidc import tokens
    from sso.oidc.grants import CLAIMED_CODE_COLUMNS, ClaimedCode

    connection = db.session.connection()
    driversql.execute(connection, _INSERT_CODE,
                      _code("c" * 64, client_id=erp.client_id, user_id=alice.id))
    read_claimed = select(*(_CODES.c[name] for name in CLAIMED_CODE_COLUMNS),
                          *tokens.read_along("authorization_codes")).where(
        _CODES.c.code_hash == bindparam("wanted"))
    code, = driversql.rows(connection, read_claimed, {"wanted": "c" * 64}, ClaimedCode)
    assert isinstance(code, ClaimedCode) and code.amr == ["pwd", "otp"]
    assert code.redirect_uri_given is False  # the request did not name it
    assert code.user_username == alice.username and code.user_updated_at.tzinfo is not None
    assert code.session_expires_at is None  # the code names no session
    wrong = namedtuple("Wrong", ["code_hash", "scope"])  # noqa: PYI024
    with pytest.raises(ValueError, match="Wrong"):
        driversql.rows(connection, _READ_CODE, {"wanted": "c" * 64}, wrong)


def _as_loaded(instance: Any) -> dict[str, Any]:
    keys, _columns = driversql.mapped_columns(type(instance))
    return {key: getattr(instance, key) for key in keys}


def test_a_session_read_with_the_drivers_sql_is_the_one_the_orm_loads(
        ctx: None, erp: Any, alice: Any) -> None:
    """``sessions.find_by_secret`` reads the session and its user with one driver statement
    (:func:`driversql.persistent`): the objects hold what an ORM query loads, the session
    holds them as persistent without history, a change to them is written, and an object
    the session already holds is the one returned."""
    from sqlalchemy import inspect

    from sso.audit import Origin
    from sso.sessions import service as sessions
    from sso.sessions.models import Proof, SSOSession
    from sso.users.models import User

    opened, secret = sessions.sign_in(db.session.get(User, alice.id),
                                      [Proof("pwd", datetime.now(UTC))],
                                      lifetime=3600, origin=Origin("192.0.2.7", "Firefox"))
    sessions.note_client(opened, erp.client_id, datetime.now(UTC))
    db.session.commit()
    session_id, user_id = opened.id, alice.id
    db.session.remove()

    expected = db.session.get(SSOSession, session_id)
    expected_session, expected_user = _as_loaded(expected), _as_loaded(expected.user)
    db.session.remove()

    found = sessions.find_by_secret(secret)
    assert found is not None and _as_loaded(found) == expected_session
    assert _as_loaded(found.user) == expected_user
    assert found.client_ids == [erp.client_id] and found.proofs[0].method == "pwd"
    assert inspect(found).persistent and inspect(found.user).persistent
    assert not db.session.dirty and not inspect(found).attrs.last_seen_at.history.has_changes()
    assert db.session.get(SSOSession, session_id) is found  # in the identity map
    assert db.session.get(User, user_id) is found.user

    found.ip = "192.0.2.8"  # a change is flushed as an UPDATE of the row
    db.session.commit()
    db.session.remove()
    assert db.session.get(SSOSession, session_id).ip == "192.0.2.8"
    db.session.remove()

    held_user = db.session.get(User, user_id)  # already loaded in this session: kept
    held_user.name = "Alice, not yet written"
    found = sessions.find_by_secret(secret)
    assert found.user is held_user and found.user.name == "Alice, not yet written"
    assert sessions.find_by_secret(secret) is found
    assert sessions.find_by_secret("not-a-secret") is None


def test_a_session_read_sees_what_the_request_has_not_flushed(ctx: None, alice: Any) -> None:
    """An ORM query flushes pending changes first (autoflush); so does the driver's read."""
    from sso.audit import Origin
    from sso.sessions import service as sessions
    from sso.sessions.models import Proof
    from sso.users.models import User

    opened, secret = sessions.sign_in(db.session.get(User, alice.id),
                                      [Proof("pwd", datetime.now(UTC))],
                                      lifetime=3600, origin=Origin("192.0.2.7"))
    assert sessions.find_by_secret(secret) is opened  # pending, not yet flushed
    db.session.rollback()
    assert sessions.find_by_secret(secret) is None


def _facts_alone_and_along(user: Any, client_id: str, secret: str) -> tuple[Any, Any]:
    """What the ``mfa`` and ``activation`` steps read, each on its own, and as read along
    with the session in the authorization's one statement."""
    from flask import current_app

    from sso import flow
    from sso.apps import service as apps
    from sso.flow.passage import _CLIENT_PARAM
    from sso.mfa import policy
    from sso.sessions import service as sessions

    request = flow.Request(flow_id="", started_at=datetime.now(UTC), client_id=client_id,
                           client_name="ERP", scopes=("openid",))
    alone = {"mfa": policy._stored_facts(user.id, request),
             "activation": (apps.status_of(user.id, client_id),)}
    read = current_app.extensions["sso_passage"].stored_read
    found, values = sessions.find_by_secret_along(secret, read.statement,
                                                  {_CLIENT_PARAM: client_id})
    assert found is not None and found.user_id == user.id
    along = {name: (tuple(map(bool, got)) if name == "mfa" else got)
             for name, got in read.split(values).items()}
    return alone, along


def test_what_the_steps_read_with_the_session_is_what_each_reads_alone(
        ctx: None, erp: Any, alice: Any) -> None:
    """The authorization reads the steps' facts in the session's statement
    (``flow.Step.reads``): the same values as each step's own statement, for a user with
    none of them and for one enrolled, required by an admin, holding a role that requires a
    second factor through a parent group, with an account waiting for approval."""
    from sso.apps.models import AppAccount
    from sso.audit import Origin
    from sso.mfa.models import RoleRequirement, TotpAuthenticator, UserRequirement
    from sso.sessions import service as sessions
    from sso.sessions.models import Proof
    from sso.users.models import AppRole, Group, GroupMember, GroupRole, User

    user = db.session.get(User, alice.id)
    _session, secret = sessions.sign_in(user, [Proof("pwd", datetime.now(UTC))],
                                        lifetime=3600, origin=Origin("192.0.2.7"))
    db.session.commit()
    alone, along = _facts_alone_and_along(user, erp.client_id, secret)
    assert alone == along == {"mfa": (False, False, False), "activation": (None,)}

    db.session.add_all([
        TotpAuthenticator(user_id=user.id, secret_encrypted="x"),
        UserRequirement(user_id=user.id),
        AppAccount(user_id=user.id, client_id=erp.client_id, status="pending"),
    ])
    db.session.commit()
    alone, along = _facts_alone_and_along(user, erp.client_id, secret)
    assert alone == along == {"mfa": (True, True, False), "activation": ("pending",)}

    parent = Group(name="finance", display_name="Finance")
    child = Group(name="payables", display_name="Payables", parent=parent)
    role = AppRole(client_id=erp.client_id, name="approver")
    db.session.add_all([parent, child, role])
    db.session.flush()
    db.session.add_all([GroupMember(group_id=child.id, user_id=user.id),
                        GroupRole(group_id=parent.id, role_id=role.id),
                        RoleRequirement(role_id=role.id)])
    db.session.delete(db.session.get(TotpAuthenticator, user.id))
    db.session.commit()
    alone, along = _facts_alone_and_along(user, erp.client_id, secret)
    assert alone == along == {"mfa": (False, True, True), "activation": ("pending",)}


def test_a_step_reads_its_own_facts_where_they_were_not_read_with_the_session(
        app: Any, erp: Any, alice: Any) -> None:
    """Facts read with a session serve only that session's user; a session read earlier in
    the request carries none, and the steps then run their own statements."""
    from sso import flow
    from sso.audit import Origin
    from sso.flow import passage
    from sso.sessions import service as sessions
    from sso.sessions.models import Proof
    from sso.users.models import User

    request = flow.Request(flow_id="", started_at=datetime.now(UTC), client_id=erp.client_id,
                           client_name="ERP", scopes=("openid",))
    carrying = replace(request, stored=flow.StoredFacts(alice.id, {"mfa": (True, False, False)}))
    assert carrying.stored_for("mfa", alice.id) == (True, False, False)
    assert carrying.stored_for("mfa", alice.id + 1) is None
    assert carrying.stored_for("activation", alice.id) is None

    with app.app_context():
        _session, secret = sessions.sign_in(db.session.get(User, alice.id),
                                            [Proof("pwd", datetime.now(UTC))],
                                            lifetime=3600, origin=Origin("192.0.2.7"))
        db.session.commit()
        cookie = f"{passage.session_cookie_name()}={secret}"
        db.session.remove()
    with app.test_request_context("/authorize", headers={"Cookie": cookie}):
        found, along = passage.current_session_for(request, passage.browser_secret())
        assert found is not None and along.stored_for("mfa", alice.id) == (
            False, False, False)
        assert along.stored_for("activation", alice.id) == (None,)
    with app.test_request_context("/authorize", headers={"Cookie": cookie}):
        read_before = passage.current_session()
        found, along = passage.current_session_for(request, passage.browser_secret())
        assert found is read_before is not None
        assert along is request and along.stored is None


def _kept_cursor(connection: Any) -> Any:
    return connection.connection.info.get("sso_driversql_cursor")


def test_a_connection_keeps_one_cursor_for_its_statements(ctx: None, erp: Any,
                                                          alice: Any) -> None:
    """On PostgreSQL the statements of one connection run on the one cursor kept with it
    (a cursor made for each cost a sixth of a hot statement in the driver); on SQLite, whose
    cursors cost little and cannot tell that they were closed, each has its own."""
    connection = db.session.connection()
    made: list[Any] = []
    pooled = connection.connection
    make_cursor = pooled.cursor

    def counted() -> Any:
        made.append(make_cursor())
        return made[-1]

    pooled.cursor = counted
    try:
        for code_hash in ("k" * 64, "l" * 64):
            driversql.execute(connection, _INSERT_CODE,
                              _code(code_hash, client_id=erp.client_id, user_id=alice.id))
            assert len(driversql.rows(connection, _READ_CODE, {"wanted": code_hash})) == 1
    finally:
        del pooled.cursor
    if connection.dialect.name == "postgresql":
        assert len(made) <= 1
        assert _kept_cursor(connection) is not None and not _kept_cursor(connection).closed
    else:
        assert len(made) == 4
        assert _kept_cursor(connection) is None


def test_a_failed_statement_leaves_a_new_cursor_for_the_next(ctx: None, erp: Any,
                                                             alice: Any) -> None:
    """SQLAlchemy closes the cursor of a statement that failed: the next statement on the
    connection does not meet it closed, it runs on a new one."""
    connection = db.session.connection()
    row = _code("f" * 64, client_id=erp.client_id, user_id=alice.id)
    driversql.execute(connection, _INSERT_CODE, row)
    before = _kept_cursor(connection)
    savepoint = connection.begin_nested()
    with pytest.raises(IntegrityError):
        driversql.execute(connection, _INSERT_CODE, row)
    savepoint.rollback()
    assert len(driversql.rows(connection, _READ_CODE, {"wanted": "f" * 64})) == 1
    if connection.dialect.name == "postgresql":
        assert before is not None and before.closed
        assert _kept_cursor(connection) is not before
        assert not _kept_cursor(connection).closed


def test_a_connection_made_anew_does_not_meet_the_old_ones_cursor(app: Any) -> None:
    """The kept cursor lives in the pool's record of the driver connection, which SQLAlchemy
    empties when it closes or invalidates that connection: the one made in its place runs
    its statements on a cursor of its own."""
    with app.app_context():
        engine = db.engine
        with engine.connect() as connection:
            assert driversql.rows(connection, _READ_CODE, {"wanted": "n" * 64}) == []
            first_driver = connection.connection.dbapi_connection
            connection.invalidate()
        with engine.connect() as connection:
            assert driversql.rows(connection, _READ_CODE, {"wanted": "n" * 64}) == []
            kept = _kept_cursor(connection)
            driver = connection.connection.dbapi_connection
            assert driver is not first_driver
            if connection.dialect.name == "postgresql":
                assert kept is not None and kept.connection is driver
