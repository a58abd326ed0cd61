"""Column types shared by every package's models."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


#: How SQLAlchemy's SQLite ``DATETIME`` writes a value by default: what ``isoformat`` with
#: a space and microseconds writes for a naive datetime.
_SQLITE_DEFAULT_FORMAT = ("%(year)04d-%(month)02d-%(day)02d "
                          "%(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d")


class UTCDateTime(TypeDecorator[datetime]):
    """Store naive UTC, hand back aware UTC, on SQLite and PostgreSQL alike.

    On SQLite a value is written by one function (:meth:`bind_processor`) instead of this
    type's step and then SQLAlchemy's, which formats each field: a code flow writes about a
    dozen dates, at about 5 µs each that way and 2.4 this one (bench/README.md,
    twenty-second round). The text is the same (``tests/test_dbtypes.py``). Reading back
    keeps the two steps: SQLAlchemy's is compiled, and one function saved nothing there."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)

    def bind_processor(self, dialect: Any) -> Callable[[Any], Any] | None:
        if not _sqlite_default(self, dialect):
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        return process


def _sqlite_default(column_type: UTCDateTime, dialect: Any) -> bool:
    """Whether ``dialect`` is SQLite's and writes dates in SQLAlchemy's default format."""
    if dialect.name != "sqlite":
        return False
    impl = column_type.impl_instance.dialect_impl(dialect)
    return getattr(impl, "_storage_format", None) == _SQLITE_DEFAULT_FORMAT
