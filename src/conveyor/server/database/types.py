"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime
from typing import Any

import pydantic_core
from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class Timestamp(TypeDecorator[datetime.datetime]):
    """Always timezone-aware UTC in Python; SQLite stores it naive, PostgreSQL as timestamptz.

    Naive UTC strings on SQLite also sort correctly, which index-backed time filters need.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime.datetime | str | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # an ISO instant with its offset (models.task_runs.Moment)
            value = datetime.datetime.fromisoformat(value)
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} reached the database; use UTC")
        value = value.astimezone(datetime.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=datetime.timezone.utc)
        return value.astimezone(datetime.timezone.utc)


# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere.
JSONColumn: Any = JSON().with_variant(JSONB(), "postgresql")


def dump_json(value: Any) -> str:
    """JSON text as SQLite's JSON columns store it: compact UTF-8, written by pydantic's
    Rust encoder, a third of ``json.dumps``'s cost (recording a task run writes its whole
    state history as JSON). The SQLite engines serialise with it too, so every row is
    written alike."""
    return pydantic_core.to_json(value).decode()
