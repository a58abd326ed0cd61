"""The hot statements as the driver's SQL, compiled once per dialect (issue 15).

SQLAlchemy's ``Connection.execute`` builds a cache key for the statement on every call, looks
its compiled form up, and processes each parameter through its type: for one small INSERT that
is about half of the time the statement takes on SQLite. :func:`execute` compiles a statement
(a module-level constant: it is cached by identity) once per dialect and set of parameter
names, keeps its parameters' type processors, and runs it on a cursor of the connection's
own through ``Connection._cursor_execute``: the engine's events still fire (the statement
watchdog, the SQLite write gate, the error metrics, the tests' statement counts) and a driver
error is handled as SQLAlchemy handles it (wrapped, a disconnect invalidating the pool), but
no execution context or result metadata is built: ``exec_driver_sql`` spent about a tenth of
an introspection's instructions on those, for rows that are read here by position anyway.
The values reach the database as ``Connection.execute`` would send them: every parameter goes
through its type's bind processor (dates in UTC, JSON serialised).

Only statements that need nothing computed at execution time go this way: no column defaults
to fill in (the caller gives every value). :func:`execute` hands back the driver's rows as
they come (for writes, and reads of plain strings and numbers); :func:`rows` converts each
value through its column's type as ``Connection.execute`` would (dates, JSON, booleans).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import instance_dict, instance_state

from . import database
from .extensions import db

#: (statement id, dialect, parameter names) -> (SQL, parameter order or None for named
#: parameters, default values, the bind processors of the parameters that have one).
_PREPARED: dict[tuple[int, str, tuple[str, ...]],
                tuple[str, tuple[str, ...] | None, dict[str, Any],
                      dict[str, Callable[[Any], Any]]]] = {}


def prepared(statement: Any, dialect: Any, params: dict[str, Any]
             ) -> tuple[str, tuple[Any, ...] | dict[str, Any]]:
    """``statement`` as the driver's SQL for ``dialect``, with ``params`` as the driver wants
    them (in order for a positional driver, by name for the others), processed by type."""
    names = tuple(params)
    key = (id(statement), dialect.name, names)
    found = _PREPARED.get(key)
    if found is None:
        found = _PREPARED[key] = _compile(statement, dialect, names)
    sql, order, defaults, processors = found
    values = {**defaults, **params} if defaults else dict(params)
    for name, process in processors.items():
        values[name] = process(values[name])
    return sql, (tuple(values[name] for name in order) if order is not None else values)


def _compile(statement: Any, dialect: Any, names: tuple[str, ...]
             ) -> tuple[str, tuple[str, ...] | None, dict[str, Any],
                        dict[str, Callable[[Any], Any]]]:
    compiled = statement.compile(dialect=dialect, column_keys=list(names))
    if compiled.insert_prefetch or compiled.update_prefetch:
        missing = [column.key for column in (*compiled.insert_prefetch,
                                             *compiled.update_prefetch)]
        raise ValueError(f"give every column a value: {', '.join(missing)} would take its"
                         " default at execution")
    processors = {}
    for name, bind in compiled.binds.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[compiled.escaped_bind_names.get(name, name)] = process
    order = tuple(compiled.positiontup) if compiled.positional else None
    defaults = {compiled.escaped_bind_names.get(name, name): value
                for name, value in compiled.params.items() if name not in names}
    return str(compiled), order, defaults, processors


def execute(connection: Any, statement: Any, params: dict[str, Any]) -> None:
    """Run ``statement`` (a write without RETURNING) with ``params`` on ``connection`` (a
    SQLAlchemy ``Connection``)."""
    _run(connection, *prepared(statement, connection.dialect, params), fetch=False)


def _run(connection: Any, sql: str, params: Any, *, fetch: bool) -> list[Any]:
    """``sql`` on a cursor of ``connection``'s driver connection, as ``exec_driver_sql`` runs
    it (events, error handling) without its execution context; the rows if ``fetch``.

    ``connection`` must be in the transaction the statement belongs to, or (a read) need none:
    unlike ``exec_driver_sql`` this begins none."""
    pooled = connection.connection  # SQLAlchemy's own checks (closed, invalidated)
    try:
        cursor = _cursor_of(pooled)
    except Exception as error:  # noqa: BLE001 - handled (wrapped, re-raised) by SQLAlchemy
        connection._handle_dbapi_exception(error, sql, params, None, None)
    connection._cursor_execute(cursor, sql, params)  # on failure: closes the cursor, raises
    fetched: list[Any] = []
    if fetch:
        try:
            fetched = cursor.fetchall()
        except Exception as error:  # noqa: BLE001 - handled as above
            connection._handle_dbapi_exception(error, sql, params, cursor, None)
    if not _KEEPS_CURSOR.get(type(cursor), False):
        cursor.close()
    return fetched


_CURSOR = "sso_driversql_cursor"

#: Cursor types kept open between statements: those that say when they are closed.
_KEEPS_CURSOR: dict[type, bool] = {}


def _cursor_of(pooled: Any) -> Any:
    """A cursor of ``pooled``'s driver connection: on PostgreSQL the one kept with that
    connection, made once. A psycopg cursor made for each statement cost about 45 µs
    (its adapters' map, its first execution's set-up), a sixth of a hot statement's time
    in the driver (issue 15). It is kept in the pool's ``info`` of the connection, which
    SQLAlchemy clears when the driver connection is closed or invalidated, and only while
    it is open: SQLAlchemy closes a cursor whose statement failed."""
    kept = pooled.info.get(_CURSOR)
    if kept is not None and not kept.closed:
        return kept
    cursor = pooled.cursor()
    keeps = _KEEPS_CURSOR.get(type(cursor))
    if keeps is None:
        keeps = _KEEPS_CURSOR[type(cursor)] = isinstance(getattr(cursor, "closed", None), bool)
    if keeps:
        pooled.info[_CURSOR] = cursor
    return cursor


def one_statement(statement: Any, params: dict[str, Any], row_type: Any = None) -> Any:
    """The rows of one statement (``row_type``: as :func:`rows`) that needs no transaction
    of its own: a read, or on PostgreSQL a write that is whole in one statement (a refresh,
    a code exchange, a code issued with its audit event).

    It joins the request's transaction if one has begun, so that what the request wrote
    counts (changes still pending in the ORM session are flushed first, which begins it).
    Else it runs alone:

    * on PostgreSQL, on a connection of :func:`sso.database.read_bind`, in autocommit: one
      round trip instead of three (BEGIN, the statement, ROLLBACK or COMMIT), and no ORM
      session made;
    * on SQLite, on the request's held connection if it holds one (the driver begins a
      transaction only for a write), else on a connection of ``read_bind``.

    A read before the request's first write sees what it would see in the transaction:
    PostgreSQL's READ COMMITTED takes a new snapshot for every statement."""
    writes = database.current_writes()
    has_session = db.session.registry.has()
    if writes is None:
        if has_session and db.session().in_transaction():
            db.session.flush()
            return rows(db.session.connection(), statement, params, row_type)
    else:
        # The ORM session is bound to the held connection (``database.Writes.bind``): it
        # has written only if that connection's transaction has begun. Objects it merely
        # holds (the SSO session read for an authorization) begin nothing.
        if has_session:
            session = db.session()
            if session.new or session.dirty or session.deleted:
                session.flush()
        begun = writes.begun()
        if begun is not None:
            return rows(begun, statement, params, row_type)
        if writes.reads_on_held():
            return rows(writes.held_connection(), statement, params, row_type)
    bind = database.read_bind()
    if isinstance(bind, Connection):  # the tests' one connection
        return rows(bind, statement, params, row_type)
    with bind.connect() as connection:
        return rows(connection, statement, params, row_type)


#: (statement id, dialect) -> (the row's type, the result processor of each column or None).
_RESULTS: dict[tuple[int, str], tuple[Any, tuple[Callable[[Any], Any] | None, ...]]] = {}


def rows(connection: Any, statement: Any, params: dict[str, Any],
         row_type: Any = None) -> list[Any]:
    """The rows ``statement`` (a SELECT, or a write with RETURNING) gives, each a named tuple
    whose values went through their columns' result processing, as ``Connection.execute``
    would give them: a SQLite date comes back a UTC ``datetime``, a JSON column a list.
    ``row_type``: a named tuple class of the statement's columns, in order, to build the rows
    of instead (one with methods of its own)."""
    dialect = connection.dialect
    key = (id(statement), dialect.name)
    found = _RESULTS.get(key)
    if found is None:
        found = _RESULTS[key] = _result_of(statement, dialect)
    own_type, processors = found
    if row_type is None:
        row_type = own_type
    elif row_type._fields != own_type._fields:
        raise ValueError(f"{row_type.__name__} does not name the statement's columns in order")
    fetched = _run(connection, *prepared(statement, dialect, params), fetch=True)
    if not any(processors):
        return [row_type._make(row) for row in fetched]
    return [row_type._make([value if process is None else process(value)
                            for process, value in zip(processors, row, strict=True)])
            for row in fetched]


def _result_of(statement: Any, dialect: Any
               ) -> tuple[Any, tuple[Callable[[Any], Any] | None, ...]]:
    columns = statement.compile(dialect=dialect)._result_columns
    names = [column.keyname for column in columns]
    processors = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None)
                       for column in columns)
    return namedtuple("Row", names), processors  # noqa: PYI024 - built per statement


def mapped_columns(model: Any) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """The attribute names of ``model``'s mapped columns and their columns, in the mapper's
    order: what :func:`persistent` takes a row of."""
    mapper = model.__mapper__
    properties = mapper.column_attrs
    if any(len(prop.columns) != 1 for prop in properties):
        raise ValueError(f"{model.__name__} maps an attribute to more than one column")
    return (tuple(prop.key for prop in properties),
            tuple(prop.columns[0] for prop in properties))


def persistent(session: Any, model: Any, keys: tuple[str, ...], values: Any,
               **related: Any) -> Any:
    """The ``model`` object of a row read with :func:`rows` (``values`` in the order of
    :func:`mapped_columns`' ``keys``), as a query through ``session`` would give it: the
    object the session already holds under that primary key if there is one, else a new one
    the session holds as persistent, its columns loaded and without history, so that a change
    made to it is flushed as an UPDATE. ``related``: many-to-one relationships loaded along,
    objects ``session`` holds already (made by this function first).

    An ORM query costs more than the read itself (its statement's cache key, the loading
    context, the row's processing per attribute); an authorization reads its SSO session and
    user this way (issue 15). ``session`` is the ORM session itself, not its scoped proxy.
    The object joins it as ``Session.add`` would make it join, without the save-update
    cascade: that walked every relationship of the model, none of which a new object has
    loaded but ``related``, which the session holds (a tenth of the reading of an
    authorization's SSO session)."""
    mapper = model.__mapper__
    loaded = dict(zip(keys, values, strict=True))
    identity = mapper.identity_key_from_primary_key(
        [loaded[mapper.get_property_by_column(column).key] for column in mapper.primary_key])
    held = session.identity_map.get(identity)
    if held is not None:
        return held
    instance = mapper.class_manager.new_instance()
    state = instance_dict(instance)
    state.update(loaded)
    state.update(related)
    make_transient_to_detached(instance)
    session._save_or_update_impl(instance_state(instance))
    return instance
