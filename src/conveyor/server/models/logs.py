"""Logs of flow runs and task runs."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.schemas.api import LogFilter
from conveyor.server.database import orm


def filter_logs(session: Session, flt: LogFilter) -> Sequence[orm.Log]:
    """Oldest first, so a follower can page forward with ``after_id``."""
    log = orm.Log
    query = select(log)
    if flt.flow_run_id is not None:
        query = query.where(log.flow_run_id == flt.flow_run_id)
    if flt.task_run_id is not None:
        query = query.where(log.task_run_id == flt.task_run_id)
    if flt.level_ge:
        query = query.where(log.level >= flt.level_ge)
    if flt.after_id is not None:
        query = query.where(log.id > flt.after_id)
    query = query.order_by(log.id).limit(flt.limit)
    return (session.execute(query)).scalars().all()
