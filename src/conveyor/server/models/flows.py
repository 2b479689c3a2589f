"""Flows: created on first use by name."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from conveyor.server.database import orm
from conveyor.server.models.common import insert_ignoring_duplicates


async def ensure_flow(session: AsyncSession, name: str, tags: list[str] | None = None) -> orm.Flow:
    """The flow with this name, created if needed (safe under concurrent creation)."""
    flow = await read_flow_by_name(session, name)
    if flow is not None:
        return flow
    await insert_ignoring_duplicates(
        session, orm.Flow, [{"id": uuid.uuid4(), "name": name, "tags": tags or []}]
    )
    flow = await read_flow_by_name(session, name)
    assert flow is not None
    return flow


async def read_flow(session: AsyncSession, flow_id: uuid.UUID) -> orm.Flow | None:
    return await session.get(orm.Flow, flow_id)


async def read_flow_by_name(session: AsyncSession, name: str) -> orm.Flow | None:
    result = await session.execute(select(orm.Flow).where(orm.Flow.name == name))
    return result.scalar_one_or_none()


async def list_flows(session: AsyncSession, limit: int, offset: int) -> Sequence[orm.Flow]:
    result = await session.execute(
        select(orm.Flow).order_by(orm.Flow.name).limit(limit).offset(offset)
    )
    return result.scalars().all()


async def delete_flow(session: AsyncSession, flow_id: uuid.UUID) -> bool:
    flow = await session.get(orm.Flow, flow_id)
    if flow is None:
        return False
    await session.delete(flow)
    return True
