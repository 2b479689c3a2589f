"""What the web UI's dashboard reads: bounded, index-backed summaries of recent runs.

Every query here is capped: a chart counts at most ``cap`` runs per state (reading the
``(state_type, created)`` index alone, newest first), and every list has a ``limit``.
A database holding years of runs costs the dashboard no more than one holding a day's.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, case, cast, func, literal, select
from sqlalchemy.orm import Session

from conveyor.schemas.deployments import WORKER_OFFLINE_AFTER_SECONDS
from conveyor.schemas.states import StateType
from conveyor.server.database import orm
from conveyor.server.models.run_sweeps import LATE_STATE_NAME

RunRow = tuple[orm.FlowRun, str]
"""A run and its flow's name."""


@dataclasses.dataclass(frozen=True)
class StateCounts:
    """Runs created in each bucket ``[edges[i], edges[i+1])``, by state type.

    ``capped`` names the state types that had more than the cap in the whole range: for
    those the oldest buckets are undercounted, and the UI says so."""

    edges: list[datetime.datetime]
    counts: list[dict[str, int]]
    capped: list[str]


def state_counts(session: Session, edges: Sequence[datetime.datetime], cap: int) -> StateCounts:
    """Counts of runs created between consecutive ``edges`` (ascending, evenly spaced), per
    state type.

    One query per state type, each reading at most ``cap`` entries of the
    ``(state_type, created)`` index, newest first: no table rows, and no unbounded count.
    Each entry's bucket is arithmetic on its time, not a comparison with every edge.
    (One UNION ALL of the nine was slower on SQLite: it stopped reading the index alone.)"""
    run = orm.FlowRun
    buckets = len(edges) - 1
    counts: list[dict[str, int]] = [{} for _ in range(buckets)]
    capped: list[str] = []
    for state in StateType:
        newest = (
            select(run.created.label("created"))
            .where(run.state_type == state.value, run.created >= edges[0], run.created < edges[-1])
            .order_by(run.created.desc())
            .limit(cap)
            .subquery()
        )
        bucket = _bucket(session, newest.c.created, edges[0], edges[1] - edges[0])
        total = 0
        for index, number in session.execute(select(bucket, func.count()).group_by(bucket)):
            slot = min(max(int(index), 0), buckets - 1)  # (float rounding at the very edges)
            counts[slot][state.value] = counts[slot].get(state.value, 0) + int(number)
            total += int(number)
        if total >= cap:
            capped.append(state.value)
    return StateCounts(list(edges), counts, capped)


def _bucket(
    session: Session, created: Any, start: datetime.datetime, step: datetime.timedelta
) -> Any:
    """``floor((created - start) / step)`` in SQL, for either dialect, exactly: ``start``
    and ``step`` must be whole seconds (a run on an edge belongs to the later bucket)."""
    seconds = int(step.total_seconds())
    origin = int(start.timestamp())
    if seconds != step.total_seconds() or origin != start.timestamp():
        raise ValueError("bucket edges must fall on whole seconds")
    if session.get_bind().dialect.name == "sqlite":
        # Timestamps are UTC text; strftime('%s') is their whole seconds (a float from
        # julianday() would put a run on an edge in the bucket before it).
        elapsed = cast(func.strftime("%s", created), Integer) - literal(origin)
        return elapsed // literal(seconds)  # integer division: elapsed >= 0 in the range
    elapsed = func.extract("epoch", created) - literal(origin)
    return func.floor(elapsed / literal(seconds))


def _with_flow_names(session: Session, query: Any) -> list[RunRow]:
    joined = query.add_columns(orm.Flow.name).join(orm.Flow, orm.Flow.id == orm.FlowRun.flow_id)
    return [(row, name) for row, name in session.execute(joined).all()]


def recent_runs_in(
    session: Session, states: Sequence[StateType], since: datetime.datetime, limit: int
) -> list[RunRow]:
    """The newest runs created since ``since`` whose state is one of ``states``.

    One query per state, each the newest ``limit`` along the ``(state_type, created)``
    index, merged here: an IN over the states would sort every match in the range."""
    run = orm.FlowRun
    found: list[RunRow] = []
    for state in states:
        query = (
            select(run)
            .where(run.state_type == state.value, run.created >= since)
            .order_by(run.created.desc(), run.id.desc())
            .limit(limit)
        )
        found.extend(_with_flow_names(session, query))
    found.sort(key=lambda row: (row[0].created, str(row[0].id)), reverse=True)
    return found[:limit]


def late_runs(session: Session, limit: int) -> list[RunRow]:
    """Runs marked Late (still Scheduled past their time), longest overdue first."""
    run = orm.FlowRun
    query = (
        select(run)
        .where(run.state_type == StateType.SCHEDULED.value, run.state_name == LATE_STATE_NAME)
        .order_by(run.expected_start_time, run.id)
        .limit(limit)
    )
    return _with_flow_names(session, query)


def upcoming_runs(session: Session, now: datetime.datetime, limit: int) -> list[RunRow]:
    """Scheduled runs due from ``now`` on, soonest first."""
    run = orm.FlowRun
    query = (
        select(run)
        .where(run.state_type == StateType.SCHEDULED.value, run.expected_start_time >= now)
        .order_by(run.expected_start_time, run.id)
        .limit(limit)
    )
    return _with_flow_names(session, query)


@dataclasses.dataclass(frozen=True)
class PoolHealth:
    pool: orm.WorkPool
    online: int
    offline: int
    last_heartbeat: datetime.datetime | None


def pool_health(session: Session, now: datetime.datetime, limit: int) -> list[PoolHealth]:
    """Pools by name, each with how many of its workers are online (a heartbeat within
    ``WORKER_OFFLINE_AFTER_SECONDS``) and offline."""
    pools = session.execute(select(orm.WorkPool).order_by(orm.WorkPool.name).limit(limit))
    by_id = {pool.id: pool for pool in pools.scalars()}
    if not by_id:
        return []
    since = now - datetime.timedelta(seconds=WORKER_OFFLINE_AFTER_SECONDS)
    worker = orm.Worker
    online = func.sum(case((worker.last_heartbeat > since, 1), else_=0))
    rows = session.execute(
        select(worker.work_pool_id, online, func.count(), func.max(worker.last_heartbeat))
        .where(worker.work_pool_id.in_(list(by_id)))
        .group_by(worker.work_pool_id)
    ).all()
    stats: dict[uuid.UUID, tuple[int, int, datetime.datetime | None]] = {
        pool_id: (int(up or 0), int(total) - int(up or 0), last)
        for pool_id, up, total, last in rows
    }
    return [PoolHealth(pool, *stats.get(pool.id, (0, 0, None))) for pool in by_id.values()]
