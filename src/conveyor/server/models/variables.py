"""Variables: named JSON values, set (created or replaced) by name."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from conveyor.server.database import orm


def set_variable(
    session: Session, name: str, value: Any, tags: list[str] | None = None
) -> orm.Variable:
    """Create the variable, or replace its value and tags (one statement, so concurrent
    sets of one name leave one row holding one of the values)."""
    table = cast(Table, orm.Variable.__table__)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = datetime.datetime.now(datetime.timezone.utc)
    statement = insert(table).values(
        id=uuid.uuid4(), name=name, value=value, tags=tags or [], created=now, updated=now
    )
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.name],
        set_={
            "value": statement.excluded.value,
            "tags": statement.excluded.tags,
            "updated": statement.excluded.updated,
        },
    )
    session.execute(statement)
    variable = read_variable(session, name)
    assert variable is not None
    return variable


def read_variable(session: Session, name: str) -> orm.Variable | None:
    result = session.execute(
        select(orm.Variable)
        .where(orm.Variable.name == name)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


def list_variables(session: Session, limit: int, offset: int) -> Sequence[orm.Variable]:
    result = session.execute(
        select(orm.Variable).order_by(orm.Variable.name).limit(limit).offset(offset)
    )
    return result.scalars().all()


def delete_variable(session: Session, name: str) -> bool:
    result = session.execute(delete(orm.Variable).where(orm.Variable.name == name))
    return bool(getattr(result, "rowcount", 0))
