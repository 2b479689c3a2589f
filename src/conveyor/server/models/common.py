"""Statements that differ by dialect, written once.

Both inserts here skip rows whose primary or unique key already exists: that is what
makes repeated batches and retried requests harmless.

On SQLite they bypass SQLAlchemy's per-row statement machinery, which for thousands of
small rows costs several times the insert itself: each value goes through its column's
own bind processor, or for ``Timestamp``, JSON and ``Uuid`` columns through an
equivalent that a test pins to store exactly the same, and the rows go to the driver's
``executemany`` at once. This is race-free because every SQLite write transaction holds
the database's write lock from its ``BEGIN IMMEDIATE``. PostgreSQL uses ``INSERT ... ON
CONFLICT DO NOTHING``.
"""

from __future__ import annotations

import datetime
import functools
import operator
import uuid
from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import JSON, Column, Table, Uuid, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from conveyor.server.database.orm import Base
from conveyor.server.database.types import Timestamp, dump_json

# SQLite allows 32766 host parameters per statement; stay well below.
_KEYS_PER_QUERY = 500

Row = dict[str, Any]
Converter = Callable[[Any], Any]


def insert_ignoring_duplicates(session: Session, model: type[Base], rows: Sequence[Row]) -> int:
    """Insert rows, skipping any whose primary or unique key already exists; returns how
    many rows were new."""
    if not rows:
        return 0
    table = _table(model)
    if _dialect(session).name == "sqlite":
        return _sqlite_executemany(session, table, rows, or_ignore=True)
    return len(_postgresql_insert(session, table, rows))


def insert_returning_new_keys(
    session: Session, model: type[Base], rows: Sequence[Row]
) -> list[tuple[Any, ...]]:
    """``insert_ignoring_duplicates``, returning the primary keys of the rows that were new.

    The model's primary key must be its only unique key.
    """
    if not rows:
        return []
    table = _table(model)
    if _dialect(session).name != "sqlite":
        return _postgresql_insert(session, table, rows)
    names = [c.name for c in table.primary_key.columns]
    unique: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        unique.setdefault(_key(row, names), row)  # the first of repeats wins, as ON CONFLICT
    # Optimistic: usually every row is new, and one executemany is all it takes. Only
    # when some key exists already does it pay for looking them up first.
    try:
        with session.begin_nested():
            _sqlite_executemany(session, table, list(unique.values()), or_ignore=False)
        return list(unique)
    except IntegrityError:
        pass
    existing = _existing_keys(session, table, set(unique))
    new = {key: row for key, row in unique.items() if key not in existing}
    _sqlite_executemany(session, table, list(new.values()), or_ignore=False)
    return list(new)


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


def _dialect(session: Session) -> Dialect:
    return session.get_bind().dialect


def _key(row: Row, names: list[str]) -> tuple[Any, ...]:
    return tuple(row[name] for name in names)


def _postgresql_insert(
    session: Session, table: Table, rows: Sequence[Row]
) -> list[tuple[Any, ...]]:
    # RETURNING tells the new rows on every driver (executemany rowcount does not).
    statement = (
        postgresql.insert(table).on_conflict_do_nothing().returning(*table.primary_key.columns)
    )
    return [tuple(row) for row in session.execute(statement, list(rows)).all()]


def _existing_keys(
    session: Session, table: Table, keys: set[tuple[Any, ...]]
) -> set[tuple[Any, ...]]:
    """Which of ``keys`` (primary keys) are in the table, one indexed lookup per chunk."""
    columns = list(table.primary_key.columns)
    leading = sorted({key[0] for key in keys}, key=str)
    found: set[tuple[Any, ...]] = set()
    for start in range(0, len(leading), _KEYS_PER_QUERY):
        chunk = leading[start : start + _KEYS_PER_QUERY]
        query = select(*columns).where(columns[0].in_(chunk))
        found.update(tuple(row) for row in session.execute(query))
    return found & keys


def _sqlite_executemany(
    session: Session, table: Table, rows: Sequence[Row], *, or_ignore: bool
) -> int:
    if not rows:
        return 0
    dialect = _dialect(session)
    names = tuple(rows[0])
    filled = _defaults_for(table, names)
    columns = (*names, *(name for name, _ in filled))
    converters = _converters(table, columns, dialect)
    verb = "INSERT OR IGNORE" if or_ignore else "INSERT"
    quoted = ", ".join(f'"{name}"' for name in columns)
    sql = f'{verb} INTO "{table.name}" ({quoted}) VALUES ({", ".join("?" * len(columns))})'
    # The values of a row in one C call, then only the columns that need it converted:
    # a generator over every value of every row cost more than the insert itself.
    given = operator.itemgetter(*names) if len(names) > 1 else _one(names[0])
    converted = [(index, convert) for index, convert in enumerate(converters) if convert]
    values = []
    for row in rows:
        value = list(given(row))
        if filled:
            value.extend(default() for _, default in filled)
        for index, convert in converted:
            value[index] = convert(value[index])
        values.append(tuple(value))
    cursor = session.connection().exec_driver_sql(sql, values)
    return int(cursor.rowcount)


def _one(name: str) -> Callable[[Row], tuple[Any]]:
    def get(row: Row) -> tuple[Any]:
        return (row[name],)

    return get


def _defaults_for(table: Table, given: tuple[str, ...]) -> list[tuple[str, Callable[[], Any]]]:
    """The Python-side defaults (``default=`` of the model) of the columns not given."""
    out: list[tuple[str, Callable[[], Any]]] = []
    for column in table.columns:
        default = column.default
        if column.name in given or default is None:
            continue
        arg: Any = getattr(default, "arg", None)
        if getattr(default, "is_callable", False):
            # SQLAlchemy wraps a zero-argument default to take an execution context.
            out.append((column.name, functools.partial(arg, None)))
        elif getattr(default, "is_scalar", False):
            out.append((column.name, functools.partial(_constant, arg)))
    return out


def _constant(value: Any) -> Any:
    return value


@functools.lru_cache(maxsize=256)
def _converters(
    table: Table, columns: tuple[str, ...], dialect: Dialect
) -> tuple[Converter | None, ...]:
    def converter(column: Column[Any]) -> Converter | None:
        # Our two custom types get equivalent conversions at C speed (a tenth of the
        # cost); a test pins that they store exactly what the processors store.
        if isinstance(column.type, Timestamp):
            return sqlite_timestamp
        if isinstance(column.type, JSON):
            return sqlite_json
        if isinstance(column.type, Uuid):
            return sqlite_uuid
        return column.type.dialect_impl(dialect).bind_processor(dialect)

    return tuple(converter(table.columns[name]) for name in columns)


_UTC = datetime.timezone.utc


def sqlite_timestamp(value: datetime.datetime | str | None) -> str | None:
    """What ``Timestamp`` stores on SQLite: naive UTC text with microseconds.

    A string must be a ``models.task_runs.Moment`` (``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``).
    """
    if value is None:
        return None
    if isinstance(value, str):
        return f"{value[:10]} {value[11:26]}"
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"naive datetime {value!r} reached the database; use UTC")
    if offset:
        value = value.astimezone(_UTC)
    # "YYYY-MM-DD HH:MM:SS.ffffff" and then the "+00:00" this drops.
    return value.isoformat(" ", "microseconds")[:26]


def sqlite_uuid(value: uuid.UUID | None) -> str | None:
    """What a ``Uuid`` column stores on SQLite: 32 hex digits (``UUID.hex``, which is a
    Python property, costs more than twice this)."""
    return None if value is None else value.int.to_bytes(16, "big").hex()


def sqlite_json(value: Any) -> str:
    """What the JSON column type stores on SQLite (None is JSON ``null``)."""
    if value is None:
        return "null"
    if not value and isinstance(value, (list, dict)):
        return "[]" if isinstance(value, list) else "{}"
    return dump_json(value)
