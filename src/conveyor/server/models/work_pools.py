"""Work pools, their queues and their workers, addressed by name."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from conveyor.schemas.deployments import (
    DEFAULT_QUEUE,
    WORKER_OFFLINE_AFTER_SECONDS,
    WorkerFilter,
    WorkPoolCreate,
    WorkPoolFilter,
    WorkPoolUpdate,
    WorkQueueCreate,
    WorkQueueFilter,
    WorkQueueUpdate,
)
from conveyor.schemas.work_pools import default_job_template
from conveyor.server.database import orm
from conveyor.server.models.errors import Conflict, NotFound


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


# -- pools ------------------------------------------------------------------------------
def create_work_pool(session: Session, data: WorkPoolCreate) -> orm.WorkPool:
    """A new pool with its queue ``default`` (priority 1)."""
    if read_work_pool(session, data.name) is not None:
        raise Conflict(f"name: a work pool named {data.name!r} exists already.")
    template = data.base_job_template or default_job_template(data.type)
    now = _now()
    pool = orm.WorkPool(
        id=uuid.uuid4(),
        name=data.name,
        type=data.type.value,
        description=data.description,
        base_job_template=template.model_dump(mode="json"),
        concurrency_limit=data.concurrency_limit,
        paused=data.paused,
        created=now,
        updated=now,
    )
    session.add(pool)
    session.flush()
    session.add(_queue(pool.id, DEFAULT_QUEUE, priority=1, now=now))
    session.flush()
    return pool


def read_work_pool(session: Session, name: str) -> orm.WorkPool | None:
    result = session.execute(select(orm.WorkPool).where(orm.WorkPool.name == name))
    return result.scalar_one_or_none()


def existing_work_pool(session: Session, name: str) -> orm.WorkPool:
    pool = read_work_pool(session, name)
    if pool is None:
        raise NotFound(f"No work pool named {name!r}.")
    return pool


def filter_work_pools(session: Session, flt: WorkPoolFilter) -> Sequence[orm.WorkPool]:
    query = select(orm.WorkPool)
    if flt.name:
        query = query.where(orm.WorkPool.name.in_(flt.name))
    if flt.type:
        query = query.where(orm.WorkPool.type.in_([t.value for t in flt.type]))
    query = query.order_by(orm.WorkPool.name).limit(flt.limit).offset(flt.offset)
    return session.execute(query).scalars().all()


def update_work_pool(session: Session, name: str, data: WorkPoolUpdate) -> orm.WorkPool:
    pool = existing_work_pool(session, name)
    fields = data.model_fields_set
    if "base_job_template" in fields:
        # null restores the type's default: a pool always has a template.
        template = data.base_job_template or default_job_template(pool.type)
        pool.base_job_template = template.model_dump(mode="json")
    for field in ("description", "concurrency_limit", "paused"):
        if field in fields:
            setattr(pool, field, getattr(data, field))
    pool.updated = _now()
    session.flush()
    return pool


def delete_work_pool(session: Session, name: str) -> None:
    """Delete a pool with its queues and workers; refused while deployments use it."""
    pool = existing_work_pool(session, name)
    users = session.execute(
        select(orm.Flow.name, orm.Deployment.name)
        .join(orm.Flow, orm.Flow.id == orm.Deployment.flow_id)
        .where(orm.Deployment.work_pool_id == pool.id)
        .order_by(orm.Flow.name, orm.Deployment.name)
        .limit(6)
    ).all()
    if users:
        shown = ", ".join(f"{flow}/{deployment}" for flow, deployment in users[:5])
        more = ", ..." if len(users) > 5 else ""
        raise Conflict(
            f"Work pool {name!r} is used by deployments {shown}{more}; delete them or move "
            "them to another pool first."
        )
    queues = select(orm.WorkQueue.id).where(orm.WorkQueue.work_pool_id == pool.id)
    session.execute(
        update(orm.FlowRun)
        .where(orm.FlowRun.work_queue_id.in_(queues))
        .values(work_queue_id=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(delete(orm.WorkPool).where(orm.WorkPool.id == pool.id))


# -- queues -----------------------------------------------------------------------------
def _queue(
    pool_id: uuid.UUID,
    name: str,
    *,
    priority: int,
    now: datetime.datetime,
    description: str | None = None,
    concurrency_limit: int | None = None,
    paused: bool = False,
) -> orm.WorkQueue:
    return orm.WorkQueue(
        id=uuid.uuid4(),
        work_pool_id=pool_id,
        name=name,
        description=description,
        priority=priority,
        concurrency_limit=concurrency_limit,
        paused=paused,
        created=now,
        updated=now,
    )


def create_work_queue(session: Session, pool_name: str, data: WorkQueueCreate) -> orm.WorkQueue:
    pool = existing_work_pool(session, pool_name)
    if read_work_queue(session, pool.id, data.name) is not None:
        raise Conflict(f"name: work pool {pool_name!r} has a queue named {data.name!r} already.")
    priority = data.priority
    if priority is None:
        lowest = session.execute(
            select(func.max(orm.WorkQueue.priority)).where(orm.WorkQueue.work_pool_id == pool.id)
        ).scalar_one()
        priority = (lowest or 0) + 1
    queue = _queue(
        pool.id,
        data.name,
        priority=priority,
        now=_now(),
        description=data.description,
        concurrency_limit=data.concurrency_limit,
        paused=data.paused,
    )
    session.add(queue)
    session.flush()
    return queue


def read_work_queue(session: Session, pool_id: uuid.UUID, name: str) -> orm.WorkQueue | None:
    result = session.execute(
        select(orm.WorkQueue).where(
            orm.WorkQueue.work_pool_id == pool_id, orm.WorkQueue.name == name
        )
    )
    return result.scalar_one_or_none()


def existing_work_queue(session: Session, pool_name: str, name: str) -> orm.WorkQueue:
    pool = existing_work_pool(session, pool_name)
    queue = read_work_queue(session, pool.id, name)
    if queue is None:
        raise NotFound(f"Work pool {pool_name!r} has no queue named {name!r}.")
    return queue


def filter_work_queues(
    session: Session, pool_name: str, flt: WorkQueueFilter
) -> Sequence[orm.WorkQueue]:
    pool = existing_work_pool(session, pool_name)
    query = select(orm.WorkQueue).where(orm.WorkQueue.work_pool_id == pool.id)
    if flt.name:
        query = query.where(orm.WorkQueue.name.in_(flt.name))
    query = query.order_by(orm.WorkQueue.priority, orm.WorkQueue.name)
    return session.execute(query.limit(flt.limit).offset(flt.offset)).scalars().all()


def update_work_queue(
    session: Session, pool_name: str, name: str, data: WorkQueueUpdate
) -> orm.WorkQueue:
    queue = existing_work_queue(session, pool_name, name)
    for field in ("description", "priority", "concurrency_limit", "paused"):
        if field in data.model_fields_set:
            setattr(queue, field, getattr(data, field))
    queue.updated = _now()
    session.flush()
    return queue


def delete_work_queue(session: Session, pool_name: str, name: str) -> None:
    """Delete a queue; its runs move to the pool's default queue, as do deployments that
    named it (their ``work_queue_id`` becomes null, which means the default)."""
    if name == DEFAULT_QUEUE:
        raise Conflict(f"The queue {DEFAULT_QUEUE!r} of a work pool cannot be deleted.")
    queue = existing_work_queue(session, pool_name, name)
    default = read_work_queue(session, queue.work_pool_id, DEFAULT_QUEUE)
    session.execute(
        update(orm.FlowRun)
        .where(orm.FlowRun.work_queue_id == queue.id)
        .values(work_queue_id=default.id if default is not None else None)
        .execution_options(synchronize_session=False)
    )
    session.execute(delete(orm.WorkQueue).where(orm.WorkQueue.id == queue.id))


# -- workers ----------------------------------------------------------------------------
def worker_heartbeat(session: Session, pool_name: str, worker_name: str) -> orm.Worker:
    """Record that the worker is alive, registering it on its first heartbeat."""
    pool = existing_work_pool(session, pool_name)
    table = cast(Table, orm.Worker.__table__)
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    now = _now()
    statement = insert(table).values(
        id=uuid.uuid4(), work_pool_id=pool.id, name=worker_name, last_heartbeat=now, created=now
    )
    # One statement: two heartbeats racing leave one row.
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.work_pool_id, table.c.name],
        set_={"last_heartbeat": statement.excluded.last_heartbeat},
    )
    session.execute(statement)
    worker = session.execute(
        select(orm.Worker)
        .where(orm.Worker.work_pool_id == pool.id, orm.Worker.name == worker_name)
        .execution_options(populate_existing=True)
    ).scalar_one()
    return worker


def filter_workers(
    session: Session, pool_name: str, flt: WorkerFilter
) -> list[tuple[orm.Worker, bool]]:
    """The pool's workers, most recently heard from first, each with whether it is online
    (heard from within ``WORKER_OFFLINE_AFTER_SECONDS``)."""
    pool = existing_work_pool(session, pool_name)
    since = _now() - datetime.timedelta(seconds=WORKER_OFFLINE_AFTER_SECONDS)
    online = orm.Worker.last_heartbeat > since
    query: Any = select(orm.Worker).where(orm.Worker.work_pool_id == pool.id)
    if flt.online is not None:
        query = query.where(online if flt.online else ~online)
    query = query.order_by(orm.Worker.last_heartbeat.desc(), orm.Worker.name)
    rows = session.execute(query.limit(flt.limit).offset(flt.offset)).scalars()
    return [(row, row.last_heartbeat > since) for row in rows]
