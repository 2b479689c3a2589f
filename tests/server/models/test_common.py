"""The dialect-specific inserts: same rows stored as the ORM stores them, duplicates skipped."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import JSON, Uuid, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.orm import Session

from conveyor.server.database import orm
from conveyor.server.database.engine import Database
from conveyor.server.database.types import Timestamp, dump_json
from conveyor.server.models.common import (
    insert_ignoring_duplicates,
    insert_returning_new_keys,
    sqlite_json,
    sqlite_timestamp,
    sqlite_uuid,
)
from conveyor.server.models.task_runs import moment

pytestmark = pytest.mark.anyio

UTC = datetime.timezone.utc
PLUS_TWO = datetime.timezone(datetime.timedelta(hours=2))


@pytest.mark.parametrize(
    "value",
    [
        None,
        datetime.datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # no microseconds: still written
        datetime.datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=UTC),
        datetime.datetime(2026, 3, 29, 3, 30, 0, 5, tzinfo=PLUS_TWO),
    ],
)
def test_the_fast_timestamp_is_what_the_column_type_stores(
    value: datetime.datetime | None,
) -> None:
    dialect = sqlite.dialect()
    processor = Timestamp().dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None
    assert sqlite_timestamp(value) == processor(value)


@pytest.mark.parametrize(
    "value",
    [
        datetime.datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
        datetime.datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime.datetime(2026, 3, 29, 3, 30, 0, 5, tzinfo=PLUS_TWO),
    ],
)
def test_a_moment_string_is_stored_as_its_instant_is(value: datetime.datetime) -> None:
    """Task-run times reach the columns as ``Moment`` strings, unparsed (both dialects)."""
    text_form = moment(value)
    dialect = sqlite.dialect()
    processor = Timestamp().dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None
    assert sqlite_timestamp(text_form) == processor(value) == processor(text_form)
    postgres = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
    assert Timestamp().process_bind_param(text_form, postgres) == value


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        sqlite_timestamp(datetime.datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "value", [None, [], {}, ["a", "é", "\u2028"], {"k": [1, 2.5, None]}, 0, "s"]
)
def test_the_fast_json_is_what_the_column_type_stores(value: Any) -> None:
    # The SQLite engines serialise with the same function the fast path uses.
    dialect = sqlite.dialect(json_serializer=dump_json)
    processor = JSON().dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None
    assert sqlite_json(value) == processor(value)
    assert json.loads(sqlite_json(value)) == value


@pytest.mark.parametrize(
    "value", [None, uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.uuid4(), uuid.uuid1()]
)
def test_the_fast_uuid_is_what_the_column_type_stores(value: uuid.UUID | None) -> None:
    dialect = sqlite.dialect()
    processor = Uuid().dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None
    assert sqlite_uuid(value) == processor(value)


def _flow(session: Session, name: str) -> uuid.UUID:
    # Only the name: id, tags and created come from the model's defaults.
    insert_ignoring_duplicates(session, orm.Flow, [{"name": name}])
    flow_id = session.scalar(select(orm.Flow.id).where(orm.Flow.name == name))
    assert flow_id is not None
    return flow_id


async def test_defaults_apply_and_duplicates_are_skipped(database: Database) -> None:
    first = await database.write(_flow, "etl")
    again = await database.write(_flow, "etl")
    assert first == again
    flows = await database.read(lambda s: s.scalars(select(orm.Flow)).all())
    assert [(f.name, f.tags) for f in flows] == [("etl", [])]
    assert flows[0].created.tzinfo is not None


def _task_runs(*ids: uuid.UUID) -> list[dict[str, Any]]:
    now = datetime.datetime.now(UTC)
    return [
        {"id": i, "name": "t-0", "task_key": "t", "dynamic_key": "0", "created": now} for i in ids
    ]


async def test_new_keys_are_exactly_the_rows_that_were_new(database: Database) -> None:
    a, b, c = sorted((uuid.uuid4() for _ in range(3)), key=str)

    def record(session: Session, ids: tuple[uuid.UUID, ...]) -> list[tuple[Any, ...]]:
        return insert_returning_new_keys(session, orm.TaskRun, _task_runs(*ids))

    assert sorted(await database.write(record, (a, b)), key=str) == [(a,), (b,)]
    # b again, c twice in one call: only c is new, once.
    assert await database.write(record, (b, c, c)) == [(c,)]
    count = await database.read(lambda s: s.scalar(text("SELECT count(*) FROM task_runs")))
    assert count == 3


async def test_stored_values_read_back_through_the_orm(database: Database) -> None:
    task_run_id = uuid.uuid4()
    created = datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=PLUS_TWO)

    def write(session: Session) -> None:
        insert_returning_new_keys(
            session,
            orm.TaskRun,
            [
                {
                    "id": task_run_id,
                    "name": "t-0",
                    "task_key": "t",
                    "dynamic_key": "0",
                    "tags": ["a", "é", "\u2028"],
                    "task_inputs": [{"task_run_id": str(uuid.uuid4()), "parameter": None}],
                    "created": created,
                }
            ],
        )

    await database.write(write)
    run = await database.read(lambda s: s.get(orm.TaskRun, task_run_id))
    assert run is not None
    assert run.created == created
    assert run.tags == ["a", "é", "\u2028"]
    assert run.task_inputs[0]["parameter"] is None
    # Time filters compare stored text on SQLite: the fast path must sort like the ORM's.
    later = await database.read(
        lambda s: s.scalars(
            select(orm.TaskRun.id).where(orm.TaskRun.created > created - datetime.timedelta(0, 1))
        ).all()
    )
    assert later == [task_run_id]
