"""Statements that differ by dialect, written once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from conveyor.server.database.orm import Base


def insert_ignoring_duplicates(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]]
) -> int:
    """Insert rows, skipping any whose primary or unique key already exists.

    This is what makes repeated batches and retried requests harmless. Returns how many
    rows were new.
    """
    return len(insert_returning_new_keys(session, model, rows))


def insert_returning_new_keys(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    """``insert_ignoring_duplicates``, returning the primary keys of the rows that were new."""
    if not rows:
        return []
    table = cast(Table, model.__table__)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # RETURNING tells the new rows on every driver (executemany rowcount does not).
    statement = insert(table).on_conflict_do_nothing().returning(*table.primary_key.columns)
    result = session.execute(statement, list(rows))
    return [tuple(row) for row in result.all()]
