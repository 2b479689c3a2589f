"""The tables. Every list query the API offers is backed by one of the indexes here."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from conveyor.server.database.types import JSONColumn, Timestamp

# Named constraints, so migrations can refer to them on both dialects.
NAMING = {
    "ix": "ix_%(table_name)s__%(column_0_N_name)s",
    "uq": "uq_%(table_name)s__%(column_0_N_name)s",
    "fk": "fk_%(table_name)s__%(column_0_name)s__%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Flow(Base):
    __tablename__ = "flows"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    tags: Mapped[list[str]] = mapped_column(JSONColumn, default=list)
    created: Mapped[datetime.datetime] = mapped_column(Timestamp, default=_utcnow)


class FlowRun(Base):
    __tablename__ = "flow_runs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    flow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    flow_version: Mapped[str | None] = mapped_column(String(255))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONColumn, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSONColumn, default=list)
    parent_flow_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("flow_runs.id", ondelete="SET NULL")
    )
    parent_task_run_id: Mapped[uuid.UUID | None]
    deployment_id: Mapped[uuid.UUID | None]
    # Retries the server grants when the run proposes FAILED (what the flow was given).
    retries: Mapped[int] = mapped_column(Integer, default=0)
    retry_delay_seconds: Mapped[float] = mapped_column(default=0.0)
    run_count: Mapped[int] = mapped_column(Integer, default=0)
    # The current state, denormalised so filters and lists never join the history.
    state_type: Mapped[str | None] = mapped_column(String(20))
    state_name: Mapped[str | None] = mapped_column(String(50))
    state_timestamp: Mapped[datetime.datetime | None] = mapped_column(Timestamp)
    state_id: Mapped[uuid.UUID | None]
    expected_start_time: Mapped[datetime.datetime | None] = mapped_column(Timestamp)
    start_time: Mapped[datetime.datetime | None] = mapped_column(Timestamp)
    end_time: Mapped[datetime.datetime | None] = mapped_column(Timestamp)
    created: Mapped[datetime.datetime] = mapped_column(Timestamp, default=_utcnow)
    updated: Mapped[datetime.datetime] = mapped_column(Timestamp, default=_utcnow)
    # Runs of deployments (migration 0006). deployment_id and work_queue_id have no
    # foreign keys: SQLite can add one to an existing table only by rebuilding it, and
    # dropping the old flow_runs inside the migration's transaction (where SQLite cannot
    # switch foreign keys off) would cascade-delete every task run, state and log. The
    # model layer clears them instead when a deployment or queue is deleted.
    work_queue_id: Mapped[uuid.UUID | None]
    job_variables: Mapped[dict[str, Any]] = mapped_column(
        JSONColumn, default=dict, server_default="{}"
    )
    # Unique per deployment: the scheduler's "scheduled:<time>" makes each (deployment,
    # scheduled time) at most once; a client's key makes a repeated request harmless.
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    auto_scheduled: Mapped[bool] = mapped_column(default=False, server_default=false())
    worker_id: Mapped[uuid.UUID | None]
    last_heartbeat: Mapped[datetime.datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        Index(None, "flow_id", "created"),
        Index(None, "state_type", "created"),
        Index(None, "parent_flow_run_id"),
        Index(None, "expected_start_time"),
        Index(None, "created"),
        Index(None, "deployment_id", "created"),
        # Claiming: a queue's due runs; and a deployment's future runs (the scheduler).
        Index(None, "work_queue_id", "state_type", "expected_start_time"),
        Index(None, "deployment_id", "state_type", "expected_start_time"),
        Index(None, "deployment_id", "idempotency_key", unique=True),
    )


class FlowRunState(Base):
    __tablename__ = "flow_run_states"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    flow_run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("flow_runs.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(50))
    message: Mapped[str | None] = mapped_column(Text)
    timestamp: Mapped[datetime.datetime] = mapped_column(Timestamp)
    details: Mapped[dict[str, Any]] = mapped_column(JSONColumn, default=dict)
    result_ref: Mapped[dict[str, Any] | None] = mapped_column(JSONColumn)
    transition_id: Mapped[uuid.UUID | None]

    __table_args__ = (
        Index(None, "flow_run_id", "timestamp"),
        # A repeated proposal (same transition id) must not record a second state.
        UniqueConstraint("flow_run_id", "transition_id"),
    )


class TaskRun(Base):
    __tablename__ = "task_runs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    flow_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("flow_runs.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(255))
    task_key: Mapped[str] = mapped_column(String(1000))
    task_version: Mapped[str | None] = mapped_column(String(255))
    dynamic_key: Mapped[str] = mapped_column(String(255))
    map_index: Mapped[int | None]
    tags: Mapped[list[str]] = mapped_column(JSONColumn, default=list)
    task_inputs: Mapped[list[dict[str, Any]]] = mapped_column(JSONColumn, default=list)
    cache_key: Mapped[str | None] = mapped_column(String(1000))
    state_type: Mapped[str | None] = mapped_column(String(20))
    state_name: Mapped[str | None] = mapped_column(String(50))
    state_timestamp: Mapped[datetime.datetime | None] = mapped_column(Timestamp)
    # The highest state seq applied: a late or repeated batch never moves it back.
    state_seq: Mapped[int] = mapped_column(Integer, default=0)
    run_count: Mapped[int] = mapped_column(Integer, default=0)
    start_time: Mapped[datetime.datetime | None] = mapped_column(Timestamp)
    end_time: Mapped[datetime.datetime | None] = mapped_column(Timestamp)
    created: Mapped[datetime.datetime] = mapped_column(Timestamp, default=_utcnow)
    # The whole state history, ordered by seq, in the row: a task run's states are only
    # ever appended by its own engine and read together, and one row per task run (not
    # one per state) is most of what makes bulk recording fast. See models/task_runs.py.
    states: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONColumn, default=list, server_default="[]", deferred=True
    )

    __table_args__ = (
        Index(None, "flow_run_id", "created"),
        Index(None, "state_type", "created"),
        Index(None, "created"),
    )


class Log(Base):
    __tablename__ = "logs"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    flow_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("flow_runs.id", ondelete="CASCADE")
    )
    task_run_id: Mapped[uuid.UUID | None]
    # The client's id for the line: a repeated batch inserts nothing twice.
    key: Mapped[uuid.UUID] = mapped_column(unique=True)
    name: Mapped[str] = mapped_column(String(255))
    level: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[datetime.datetime] = mapped_column(Timestamp)

    __table_args__ = (
        # Logs are read oldest-first by id within a run (tailing pages with after_id).
        Index(None, "flow_run_id", "id"),
        Index(None, "task_run_id", "id"),
        Index(None, "timestamp"),
    )


class Variable(Base):
    """A named JSON value (any JSON: object, array, string, number, bool or null)."""

    __tablename__ = "variables"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    # JSON null is stored as the JSON text ``null``, so the column itself is never NULL.
    value: Mapped[Any] = mapped_column(JSONColumn, nullable=False)
    tags: Mapped[list[str]] = mapped_column(JSONColumn, default=list)
    created: Mapped[datetime.datetime] = mapped_column(Timestamp, default=_utcnow)
    updated: Mapped[datetime.datetime] = mapped_column(Timestamp, default=_utcnow)


class Artifact(Base):
    """A rich output a run publishes for people to see: markdown, a table, a link or progress.

    Artifacts sharing a ``key`` form its history; the newest is the key's latest version.
    """

    __tablename__ = "artifacts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    key: Mapped[str | None] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(20))
    description: Mapped[str | None] = mapped_column(Text)
    data: Mapped[Any] = mapped_column(JSONColumn, nullable=False)
    flow_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("flow_runs.id", ondelete="CASCADE")
    )
    task_run_id: Mapped[uuid.UUID | None]
    created: Mapped[datetime.datetime] = mapped_column(Timestamp, default=_utcnow)

    __table_args__ = (
        Index(None, "key", "created"),
        Index(None, "flow_run_id", "created"),
        Index(None, "created"),
    )


class ConcurrencyLimit(Base):
    """At most ``limit`` slots held at once: of a tag's task runs, or of any named thing."""

    __tablename__ = "concurrency_limits"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    limit: Mapped[int] = mapped_column(Integer)
    created: Mapped[datetime.datetime] = mapped_column(Timestamp, default=_utcnow)
    updated: Mapped[datetime.datetime] = mapped_column(Timestamp, default=_utcnow)


class ConcurrencyLease(Base):
    """Slots of a limit, held until released or until ``expires`` (the holder renews)."""

    __tablename__ = "concurrency_leases"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    limit_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("concurrency_limits.id", ondelete="CASCADE")
    )
    slots: Mapped[int] = mapped_column(Integer)
    holder: Mapped[str | None] = mapped_column(String(255))
    expires: Mapped[datetime.datetime] = mapped_column(Timestamp)
    created: Mapped[datetime.datetime] = mapped_column(Timestamp, default=_utcnow)

    __table_args__ = (
        # Active slots of a limit: its unexpired leases.
        Index(None, "limit_id", "expires"),
    )


class WorkPool(Base):
    """A typed group of infrastructure; its base job template shapes every run's job."""

    __tablename__ = "work_pools"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(20))
    description: Mapped[str | None] = mapped_column(Text)
    base_job_template: Mapped[dict[str, Any]] = mapped_column(JSONColumn)
    concurrency_limit: Mapped[int | None] = mapped_column(Integer)  # None: unlimited
    paused: Mapped[bool] = mapped_column(default=False)
    created: Mapped[datetime.datetime] = mapped_column(Timestamp, default=_utcnow)
    updated: Mapped[datetime.datetime] = mapped_column(Timestamp, default=_utcnow)


class WorkQueue(Base):
    """Orders a pool's work: workers take runs from queues by priority (1 first)."""

    __tablename__ = "work_queues"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    work_pool_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("work_pools.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer)
    concurrency_limit: Mapped[int | None] = mapped_column(Integer)  # None: unlimited
    paused: Mapped[bool] = mapped_column(default=False)
    created: Mapped[datetime.datetime] = mapped_column(Timestamp, default=_utcnow)
    updated: Mapped[datetime.datetime] = mapped_column(Timestamp, default=_utcnow)

    __table_args__ = (UniqueConstraint("work_pool_id", "name"),)


class Worker(Base):
    """A worker polling a pool, known by the heartbeats it sends."""

    __tablename__ = "workers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    work_pool_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("work_pools.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    last_heartbeat: Mapped[datetime.datetime] = mapped_column(Timestamp)
    created: Mapped[datetime.datetime] = mapped_column(Timestamp, default=_utcnow)

    __table_args__ = (UniqueConstraint("work_pool_id", "name"),)


class Deployment(Base):
    """A flow's entrypoint, where its code lives, its defaults, schedules and pool."""

    __tablename__ = "deployments"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    flow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    entrypoint: Mapped[str] = mapped_column(String(1000))
    source: Mapped[dict[str, Any] | None] = mapped_column(JSONColumn)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONColumn, default=dict)
    parameter_schema: Mapped[dict[str, Any]] = mapped_column(JSONColumn, default=dict)
    # No pool: served by flow.serve(). A pool in use cannot be deleted (no ON DELETE).
    work_pool_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("work_pools.id"))
    # No queue: the pool's default queue.
    work_queue_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("work_queues.id", ondelete="SET NULL")
    )
    job_variables: Mapped[dict[str, Any]] = mapped_column(JSONColumn, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSONColumn, default=list)
    version: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    paused: Mapped[bool] = mapped_column(default=False)
    concurrency_limit: Mapped[int | None] = mapped_column(Integer)
    collision_strategy: Mapped[str] = mapped_column(String(20))
    created: Mapped[datetime.datetime] = mapped_column(Timestamp, default=_utcnow)
    updated: Mapped[datetime.datetime] = mapped_column(Timestamp, default=_utcnow)

    __table_args__ = (
        UniqueConstraint("flow_id", "name"),
        Index(None, "name"),
        Index(None, "work_pool_id"),
    )


class DeploymentSchedule(Base):
    """One schedule of a deployment (the ``Schedule`` union as JSON), with its overrides."""

    __tablename__ = "deployment_schedules"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    deployment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE")
    )
    schedule: Mapped[dict[str, Any]] = mapped_column(JSONColumn)
    active: Mapped[bool] = mapped_column(default=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONColumn, default=dict)
    created: Mapped[datetime.datetime] = mapped_column(Timestamp, default=_utcnow)

    __table_args__ = (Index(None, "deployment_id", "created"),)
