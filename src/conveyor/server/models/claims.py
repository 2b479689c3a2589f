"""The queries behind claiming: a pool's open queues, its busy runs, and due runs to take.

A run is claimable when it is SCHEDULED in an open (not paused) queue, its deployment (if
any) is not paused, and it is not an in-process retry of a run a worker already launched
(``AwaitingRetry`` with a ``worker_id``: that run's own process starts it again). A run of
a deployment whose concurrency limit is full waits (``ENQUEUE``) or is cancelled
(``CANCEL_NEW``); ``deployment_slots`` counts what each limited deployment holds.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from conveyor.schemas.deployments import CollisionStrategy
from conveyor.schemas.states import StateType
from conveyor.server.database import orm
from conveyor.server.models.errors import NotFound

# Runs that hold a slot of their queue's and pool's concurrency limits. Not PAUSED ones: a
# run waiting for a person (maybe for days) must not keep others from running; a resumed
# pause goes on at once (its process is there) even if the count then passes the limit,
# and a resumed suspension is Scheduled and claimed within the limits like any run.
ACTIVE_STATES = (StateType.PENDING.value, StateType.RUNNING.value, StateType.CANCELLING.value)


def open_queues(
    session: Session, pool: orm.WorkPool, names: Sequence[str] | None
) -> list[orm.WorkQueue]:
    """The pool's queues that are not paused, by priority (1 first) then name; only those
    named, when ``names`` is given (a name the pool lacks raises NotFound)."""
    query = select(orm.WorkQueue).where(orm.WorkQueue.work_pool_id == pool.id)
    if names is not None:
        query = query.where(orm.WorkQueue.name.in_(names))
    queues = list(session.execute(query).scalars())
    if names is not None:
        missing = sorted(set(names) - {q.name for q in queues})
        if missing:
            raise NotFound(f"queues: work pool {pool.name!r} has no queue named {missing[0]!r}.")
    queues.sort(key=lambda q: (q.priority, q.name))
    return [q for q in queues if not q.paused]


def active_runs_by_queue(session: Session, pool: orm.WorkPool) -> dict[uuid.UUID, int]:
    """How many runs of each of the pool's queues are Pending, Running or Cancelling."""
    queue_ids = select(orm.WorkQueue.id).where(orm.WorkQueue.work_pool_id == pool.id)
    rows = session.execute(
        select(orm.FlowRun.work_queue_id, func.count())
        .where(orm.FlowRun.work_queue_id.in_(queue_ids))
        .where(orm.FlowRun.state_type.in_(ACTIVE_STATES))
        .group_by(orm.FlowRun.work_queue_id)
    ).all()
    return {queue_id: int(count) for queue_id, count in rows if queue_id is not None}


@dataclasses.dataclass
class DeploymentSlots:
    limit: int
    strategy: CollisionStrategy
    active: int

    @property
    def full(self) -> bool:
        return self.active >= self.limit


def deployment_slots(session: Session, pool: orm.WorkPool) -> dict[uuid.UUID, DeploymentSlots]:
    """The pool's deployments that have a concurrency limit, and how many of their runs
    are Pending, Running or Cancelling. On PostgreSQL their rows are locked (in id order,
    so claimers never deadlock) until the claim commits: two claimers cannot both count
    the last free slot as theirs."""
    deployment = orm.Deployment
    query = (
        select(deployment.id, deployment.concurrency_limit, deployment.collision_strategy)
        .where(deployment.work_pool_id == pool.id, deployment.concurrency_limit.is_not(None))
        .order_by(deployment.id)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    slots = {
        id_: DeploymentSlots(limit or 0, CollisionStrategy(strategy), 0)
        for id_, limit, strategy in session.execute(query).all()
    }
    if not slots:
        return slots
    run = orm.FlowRun
    rows = session.execute(
        select(run.deployment_id, func.count())
        .where(run.deployment_id.in_(list(slots)), run.state_type.in_(ACTIVE_STATES))
        .group_by(run.deployment_id)
    ).all()
    for deployment_id, count in rows:
        if deployment_id is not None:
            slots[deployment_id].active = int(count)
    return slots


def _claimable(query: Any, queue_ids: Sequence[uuid.UUID]) -> Any:
    run = orm.FlowRun
    return (
        query.outerjoin(orm.Deployment, orm.Deployment.id == run.deployment_id)
        .where(run.work_queue_id.in_(queue_ids))
        .where(run.state_type == StateType.SCHEDULED.value)
        .where(or_(orm.Deployment.id.is_(None), orm.Deployment.paused.is_(False)))
        .where(or_(run.worker_id.is_(None), run.state_name != "AwaitingRetry"))
    )


def due_runs(
    session: Session,
    queue_id: uuid.UUID,
    horizon: datetime.datetime,
    limit: int,
    *,
    waiting: Collection[uuid.UUID] = (),
) -> Sequence[orm.FlowRun]:
    """Up to ``limit`` claimable runs of the queue due by ``horizon``, earliest first, but
    none of the ``waiting`` deployments (full, their runs enqueued).

    On PostgreSQL the rows are locked, skipping rows another claimer holds: concurrent
    claimers take disjoint runs and never wait on each other. On SQLite the write
    transaction (``BEGIN IMMEDIATE``) already serialises claimers.
    """
    run = orm.FlowRun
    query = (
        _claimable(select(run), [queue_id])
        .where(run.expected_start_time <= horizon)
        .order_by(run.expected_start_time, run.id)
        .limit(limit)
    )
    if waiting:
        query = query.where(
            or_(run.deployment_id.is_(None), run.deployment_id.not_in(list(waiting)))
        )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=run)
    return session.execute(query).scalars().all()


def next_scheduled_time(
    session: Session, queue_ids: Sequence[uuid.UUID], after: datetime.datetime
) -> datetime.datetime | None:
    """When the next claimable run of these queues falls due, after ``after``."""
    if not queue_ids:
        return None
    query = _claimable(select(func.min(orm.FlowRun.expected_start_time)), queue_ids).where(
        orm.FlowRun.expected_start_time > after
    )
    when: datetime.datetime | None = session.execute(query).scalar_one()
    return when


def flow_run_heartbeat(session: Session, flow_run_id: uuid.UUID, now: datetime.datetime) -> bool:
    """Record that the process running the run is alive; False if there is no such run."""
    result = session.execute(
        update(orm.FlowRun)
        .where(orm.FlowRun.id == flow_run_id)
        .values(last_heartbeat=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
