"""Variables: named JSON values, set (created or replaced) by name."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from conveyor.server.database import orm


async def set_variable(
    session: AsyncSession, name: str, value: Any, tags: list[str] | None = None
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
    await session.execute(statement)
    variable = await read_variable(session, name)
    assert variable is not None
    return variable


async def read_variable(session: AsyncSession, name: str) -> orm.Variable | None:
    result = await session.execute(
        select(orm.Variable)
        .where(orm.Variable.name == name)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def list_variables(session: AsyncSession, limit: int, offset: int) -> Sequence[orm.Variable]:
    result = await session.execute(
        select(orm.Variable).order_by(orm.Variable.name).limit(limit).offset(offset)
    )
    return result.scalars().all()


async def delete_variable(session: AsyncSession, name: str) -> bool:
    result = await session.execute(delete(orm.Variable).where(orm.Variable.name == name))
    return bool(getattr(result, "rowcount", 0))
