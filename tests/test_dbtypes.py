"""The UTC date-time column: SQLite's one-step writer writes what the two steps wrote."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import TypeDecorator

from sso.dbtypes import UTCDateTime

VALUES = [
    datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC),
    datetime(2026, 12, 7, 1, 2, 3, tzinfo=UTC),  # no microseconds: still six digits
    datetime(2026, 3, 29, 2, 30, tzinfo=ZoneInfo("Europe/Berlin")),
    datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=8))),
    datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),  # a year of three digits
    datetime(2026, 6, 1, 12, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
]


def _processors(dialect: object) -> tuple[object, object]:
    column_type = UTCDateTime().dialect_impl(dialect)
    return (column_type.bind_processor(dialect),
            TypeDecorator.bind_processor(column_type, dialect))


@pytest.mark.parametrize("value", VALUES, ids=str)
def test_sqlite_writes_what_the_two_steps_wrote(value: datetime) -> None:
    one_step, two_steps = _processors(sqlite.dialect())
    assert one_step is not None and two_steps is not None
    assert one_step(value) == two_steps(value)


def test_sqlite_refuses_a_naive_date_and_passes_none() -> None:
    one_step, _ = _processors(sqlite.dialect())
    with pytest.raises(ValueError, match="naive"):
        one_step(datetime(2026, 12, 7, 1, 2, 3))  # noqa: DTZ001 - the point of the test
    assert one_step(None) is None


def test_postgresql_keeps_the_type_s_own_step() -> None:
    dialect = postgresql.dialect()
    value = VALUES[3]
    assert UTCDateTime().dialect_impl(dialect).bind_processor(dialect)(value) == datetime(
        2026, 12, 31, 15, 59, 59, 999999)


def test_a_date_written_on_sqlite_reads_back_the_same_instant() -> None:
    table = Table("moments", MetaData(), Column("id", Integer, primary_key=True),
                  Column("at", UTCDateTime))
    engine = create_engine("sqlite://")
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        for number, value in enumerate(VALUES):
            connection.execute(insert(table).values(id=number, at=value))
        stored = connection.execute(text("SELECT at FROM moments ORDER BY id")).scalars().all()
        read = connection.execute(select(table.c.at).order_by(table.c.id)).scalars().all()
    assert stored[1] == "2026-12-07 01:02:03.000000"
    assert read == [value.astimezone(UTC) for value in VALUES]
    assert all(moment.tzinfo is UTC for moment in read)
