"""What a flow run's page reads beyond the run itself: its timeline and its logs.

Bounded like every list: a timeline holds at most ``limit`` task runs and child runs
(read through the ``(flow_run_id, created)`` and ``(parent_flow_run_id)`` indexes), and
logs come a page at a time along the ``(flow_run_id, id)`` index.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from conveyor.server.database import orm

TRACEBACK_MARK = "Traceback (most recent call last)"
# How many of a run's newest error lines are searched for a traceback.
_ERRORS_SEARCHED = 50


def task_runs_of(session: Session, flow_run_id: uuid.UUID, limit: int) -> Sequence[orm.TaskRun]:
    """The run's first ``limit`` task runs, in the order they were created."""
    task = orm.TaskRun
    query = (
        select(task)
        .where(task.flow_run_id == flow_run_id)
        .order_by(task.created, task.id)
        .limit(limit)
    )
    return session.execute(query).scalars().all()


def child_runs_of(session: Session, flow_run_id: uuid.UUID, limit: int) -> Sequence[orm.FlowRun]:
    """The run's first ``limit`` subflow runs, in the order they were created."""
    run = orm.FlowRun
    query = (
        select(run)
        .where(run.parent_flow_run_id == flow_run_id)
        .order_by(run.created, run.id)
        .limit(limit)
    )
    return session.execute(query).scalars().all()


def _log_query(flow_run_id: uuid.UUID, level_ge: int, text: str | None) -> Select[orm.Log]:
    log = orm.Log
    query = select(log).where(log.flow_run_id == flow_run_id)
    if level_ge:
        query = query.where(log.level >= level_ge)
    if text:
        # A literal, case-insensitive substring on both backends (no wildcards).
        query = query.where(log.message.icontains(text, autoescape=True))
    return query


def newest_logs(
    session: Session, flow_run_id: uuid.UUID, level_ge: int, text: str | None, limit: int
) -> list[orm.Log]:
    """The run's newest ``limit`` matching lines, returned oldest first."""
    query = _log_query(flow_run_id, level_ge, text)
    rows = session.execute(query.order_by(orm.Log.id.desc()).limit(limit))
    return list(reversed(rows.scalars().all()))


def logs_after(
    session: Session,
    flow_run_id: uuid.UUID,
    after_id: int,
    level_ge: int,
    text: str | None,
    limit: int,
) -> list[orm.Log]:
    """Matching lines newer than ``after_id``, oldest first: how the page tails the log."""
    query = _log_query(flow_run_id, level_ge, text).where(orm.Log.id > after_id)
    return list(session.execute(query.order_by(orm.Log.id).limit(limit)).scalars().all())


def latest_log_id(session: Session, flow_run_id: uuid.UUID) -> int:
    """The id of the run's newest line (0 when it has none)."""
    query = (
        select(orm.Log.id)
        .where(orm.Log.flow_run_id == flow_run_id)
        .order_by(orm.Log.id.desc())
        .limit(1)
    )
    return session.execute(query).scalar_one_or_none() or 0


def failure_traceback(session: Session, flow_run_id: uuid.UUID) -> str | None:
    """The newest traceback the run logged (at ERROR or above), if any."""
    query = (
        select(orm.Log.message)
        .where(orm.Log.flow_run_id == flow_run_id, orm.Log.level >= logging.ERROR)
        .order_by(orm.Log.id.desc())
        .limit(_ERRORS_SEARCHED)
    )
    for message in session.execute(query).scalars():
        if TRACEBACK_MARK in message:
            return str(message)
    return None
