"""Flows: created on first use by name."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.server.database import orm
from conveyor.server.models.common import insert_ignoring_duplicates


def ensure_flow(session: Session, name: str, tags: list[str] | None = None) -> orm.Flow:
    """The flow with this name, created if needed (safe under concurrent creation)."""
    flow = read_flow_by_name(session, name)
    if flow is not None:
        return flow
    insert_ignoring_duplicates(
        session, orm.Flow, [{"id": uuid.uuid4(), "name": name, "tags": tags or []}]
    )
    flow = read_flow_by_name(session, name)
    assert flow is not None
    return flow


def read_flow(session: Session, flow_id: uuid.UUID) -> orm.Flow | None:
    return session.get(orm.Flow, flow_id)


def read_flow_by_name(session: Session, name: str) -> orm.Flow | None:
    result = session.execute(select(orm.Flow).where(orm.Flow.name == name))
    return result.scalar_one_or_none()


def list_flows(session: Session, limit: int, offset: int) -> Sequence[orm.Flow]:
    result = session.execute(select(orm.Flow).order_by(orm.Flow.name).limit(limit).offset(offset))
    return result.scalars().all()


def delete_flow(session: Session, flow_id: uuid.UUID) -> bool:
    flow = session.get(orm.Flow, flow_id)
    if flow is None:
        return False
    session.delete(flow)
    return True
