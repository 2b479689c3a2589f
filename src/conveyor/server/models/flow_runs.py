"""Flow runs and their state history."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import uuid
from collections.abc import Sequence
from typing import Any, cast

from pydantic import TypeAdapter
from sqlalchemy import (
    CursorResult,
    Table,
    and_,
    delete,
    func,
    insert,
    literal,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.attributes import set_committed_value

from conveyor.schemas.api import FlowRunCreate, FlowRunFilter, FlowRunRecord, FlowRunSort
from conveyor.schemas.records import jsonable_details
from conveyor.schemas.states import TERMINAL_STATE_TYPES, State, StateDetails, StateType
from conveyor.server.database import orm
from conveyor.server.models.common import insert_ignoring_duplicates
from conveyor.server.models.flows import ensure_flow

_RUNS = cast(Table, orm.FlowRun.__table__)
_STATES = cast(Table, orm.FlowRunState.__table__)
_SEEN_STATE = aliased(orm.FlowRunState)


def state_values(flow_run_id: uuid.UUID, state: State) -> dict[str, Any]:
    """The ``flow_run_states`` row of ``state`` (a new id)."""
    return {
        "id": uuid.uuid4(),
        "flow_run_id": flow_run_id,
        "type": state.type.value,
        "name": (state.name or state.type.value.title())[:50],  # a user may name states freely
        "message": state.message,
        "timestamp": state.timestamp,
        "details": details_json(state.state_details),
        "result_ref": state.result_ref.model_dump(mode="json") if state.result_ref else None,
        "transition_id": state.state_details.transition_id,
    }


@functools.cache
def _state_adapter() -> TypeAdapter[State]:
    # Building a validator costs milliseconds: once per process, not once per request.
    return TypeAdapter(State)


def state_from_row(row: orm.FlowRunState) -> State:
    return _state_adapter().validate_python(
        {
            "type": row.type,
            "name": row.name,
            "message": row.message,
            "timestamp": row.timestamp,
            "state_details": row.details or {},
            "result_ref": row.result_ref,
        }
    )


_DETAIL_FIELDS = tuple(f.name for f in dataclasses.fields(StateDetails))


def details_json(details: StateDetails) -> dict[str, Any]:
    """State details as stored: set fields only, ids and times as strings."""
    return jsonable_details((name, getattr(details, name)) for name in _DETAIL_FIELDS)


def create_flow_run(session: Session, data: FlowRunCreate) -> tuple[orm.FlowRun, bool]:
    """Create a run (Pending unless another state is given); ``(run, created)``.

    With a client-chosen id, repeating the request returns the existing run unchanged.
    """
    if data.id is not None:
        existing = session.get(orm.FlowRun, data.id)
        if existing is not None:
            return existing, False
    values = _run_values(session, data)
    if insert_flow_run_rows(session, values, data.state or State(type=StateType.PENDING)):
        new = session.get(orm.FlowRun, values["id"])
        assert new is not None
        return new, True
    run = session.get(orm.FlowRun, values["id"])
    assert run is not None
    return run, False


def _run_values(session: Session, data: FlowRunCreate) -> dict[str, Any]:
    """The columns of a new run (its flow created if need be), for ``insert_flow_run``."""
    flow = ensure_flow(session, data.flow_name)
    return {
        "id": data.id or uuid.uuid4(),
        "flow_id": flow.id,
        "name": data.name,
        "flow_version": data.flow_version,
        "parameters": data.parameters,
        "tags": data.tags,
        "parent_flow_run_id": data.parent_flow_run_id,
        "parent_task_run_id": data.parent_task_run_id,
        "retries": data.retries,
        "retry_delay_seconds": data.retry_delay_seconds,
    }


def insert_flow_run(session: Session, values: dict[str, Any], state: State) -> orm.FlowRun | None:
    """Insert a run (``values`` are its columns, ``id`` among them) in its first state.

    None, and nothing written, when a run with that id, or with that idempotency key for
    that deployment, exists: two identical requests racing create one run.
    """
    if not insert_flow_run_rows(session, values, state):
        return None
    return session.get(orm.FlowRun, values["id"])


def insert_flow_run_rows(session: Session, values: dict[str, Any], state: State) -> bool:
    """``insert_flow_run`` without loading the run back: whether it was new."""
    now = datetime.datetime.now(datetime.timezone.utc)
    state_row = state_values(values["id"], state)
    before = {"run_count": 0, "expected_start_time": values.get("expected_start_time")}
    row = {"created": now, **before, **values, **_columns_after(before, state, state_row, now)}
    if insert_ignoring_duplicates(session, orm.FlowRun, [row]) != 1:
        return False
    session.execute(insert(_STATES), [state_row])
    return True


def record_flow_runs(session: Session, runs: Sequence[FlowRunRecord]) -> int:
    """Record runs that engines started themselves, in order; returns how many were new.

    A run whose parent is gone (deleted while its engine still reported) is skipped, as
    the batch's other records of unknown runs are.
    """
    created = 0
    for data in runs:
        parent = data.parent_flow_run_id
        if parent is not None and session.get(orm.FlowRun, parent) is None:
            continue
        # No run loaded before or after (a repeated record is simply not inserted): a
        # flow called in a process starts with this, and its first batch waits on it.
        state = data.state or State(type=StateType.PENDING)
        created += insert_flow_run_rows(session, _run_values(session, data), state)
    return created


def record_state(session: Session, run: orm.FlowRun, state: State) -> None:
    """Append ``state`` to the history and make it the run's current state.

    Two plain statements, an INSERT and an UPDATE, rather than the unit of work's flush
    (half the server's time in a state change went to the ORM); ``run`` is updated in
    memory as loaded, so a later flush does not write these columns again.
    """
    row = state_values(run.id, state)
    session.execute(insert(_STATES), [row])
    before = {
        "state_type": run.state_type,
        "expected_start_time": run.expected_start_time,
        "run_count": run.run_count,
        "start_time": run.start_time,
    }
    now = datetime.datetime.now(datetime.timezone.utc)
    changes = _columns_after(before, state, row, now)
    session.execute(update(_RUNS).where(_RUNS.c.id == run.id).values(changes))
    for key, value in changes.items():
        set_committed_value(run, key, value)


def _columns_after(
    before: dict[str, Any], state: State, row: dict[str, Any], now: datetime.datetime
) -> dict[str, Any]:
    """The run's columns that change when ``state`` (stored as ``row``) becomes current;
    ``before`` holds the columns this depends on (absent: None)."""
    changes: dict[str, Any] = {
        "state_type": row["type"],
        "state_name": row["name"],
        "state_timestamp": row["timestamp"],
        "state_id": row["id"],
        "updated": now,
    }
    if state.type is StateType.SCHEDULED and state.state_details.scheduled_time is not None:
        changes["expected_start_time"] = state.state_details.scheduled_time
    elif before.get("expected_start_time") is None:
        changes["expected_start_time"] = state.timestamp
    was_paused = before.get("state_type") == StateType.PAUSED.value
    if state.type is StateType.RUNNING and not was_paused:
        # A pause resumed is the same attempt going on, not a new one (retries count these).
        changes["run_count"] = (before.get("run_count") or 0) + 1
        if before.get("start_time") is None:
            changes["start_time"] = state.timestamp
    if state.type in TERMINAL_STATE_TYPES:
        changes["end_time"] = state.timestamp
    return changes


def assign_worker(
    session: Session, run: orm.FlowRun, worker_id: uuid.UUID, now: datetime.datetime
) -> None:
    """The run is the worker's now (claimed): its heartbeats keep the run alive."""
    changes = {"worker_id": worker_id, "last_heartbeat": now}
    session.execute(update(_RUNS).where(_RUNS.c.id == run.id).values(changes))
    for key, value in changes.items():
        set_committed_value(run, key, value)


@dataclasses.dataclass(frozen=True)
class LockedRun:
    """A run locked for a state change, with what deciding it needs."""

    run: orm.FlowRun
    current: orm.FlowRunState | None
    repeated: orm.FlowRunState | None
    """The state a proposal with the same transition id already made, if any."""


def lock_for_transition(
    session: Session, flow_run_id: uuid.UUID, transition_id: uuid.UUID | None
) -> LockedRun | None:
    """The run (locked: ``FOR UPDATE`` on PostgreSQL, the write transaction on SQLite),
    its current state and the state ``transition_id`` already made: one query (two on
    PostgreSQL) where reading them one by one took three."""
    run, state, seen = orm.FlowRun, orm.FlowRunState, _SEEN_STATE
    if session.get_bind().dialect.name == "postgresql":
        # Lock first, then read in a statement of its own: a query that waited for the
        # lock would see the run's new row but the state rows as of before the wait.
        session.execute(select(run.id).where(run.id == flow_run_id).with_for_update())
    repeated_id = (
        select(seen.id)
        .where(seen.flow_run_id == flow_run_id, seen.transition_id == transition_id)
        .correlate(None)
        .scalar_subquery()
    )
    query = (
        select(run, state, repeated_id if transition_id is not None else literal(None))
        .outerjoin(state, state.id == run.state_id)
        .where(run.id == flow_run_id)
    )
    found = session.execute(query).first()
    if found is None:
        return None
    locked_run, current, repeated = found
    if repeated is None:
        return LockedRun(locked_run, current, None)
    if current is not None and current.id == repeated:
        return LockedRun(locked_run, current, current)
    return LockedRun(locked_run, current, session.get(orm.FlowRunState, repeated))


def read_flow_run(
    session: Session, flow_run_id: uuid.UUID, *, for_update: bool = False
) -> orm.FlowRun | None:
    query = select(orm.FlowRun).where(orm.FlowRun.id == flow_run_id)
    if for_update:
        query = query.with_for_update()
    result = session.execute(query)
    return result.scalar_one_or_none()


def current_state(session: Session, run: orm.FlowRun) -> State | None:
    if run.state_id is None:
        return None
    row = session.get(orm.FlowRunState, run.state_id)
    return state_from_row(row) if row is not None else None


def state_by_transition(
    session: Session, flow_run_id: uuid.UUID, transition_id: uuid.UUID
) -> orm.FlowRunState | None:
    result = session.execute(
        select(orm.FlowRunState).where(
            orm.FlowRunState.flow_run_id == flow_run_id,
            orm.FlowRunState.transition_id == transition_id,
        )
    )
    return result.scalar_one_or_none()


def read_states(session: Session, flow_run_id: uuid.UUID) -> Sequence[orm.FlowRunState]:
    result = session.execute(
        select(orm.FlowRunState)
        .where(orm.FlowRunState.flow_run_id == flow_run_id)
        .order_by(orm.FlowRunState.timestamp, orm.FlowRunState.id)
    )
    return result.scalars().all()


def _filtered(query: Any, flt: FlowRunFilter) -> Any:
    run = orm.FlowRun
    if flt.flow_id:
        query = query.where(run.flow_id.in_(flt.flow_id))
    if flt.flow_name:
        query = query.where(
            run.flow_id.in_(select(orm.Flow.id).where(orm.Flow.name.in_(flt.flow_name)))
        )
    if flt.state_type:
        query = query.where(run.state_type.in_([s.value for s in flt.state_type]))
    if flt.state_name:
        query = query.where(run.state_name.in_(flt.state_name))
    if flt.deployment_id:
        query = query.where(run.deployment_id.in_(flt.deployment_id))
    if flt.parent_flow_run_id:
        query = query.where(run.parent_flow_run_id == flt.parent_flow_run_id)
    if flt.created_after:
        query = query.where(run.created >= flt.created_after)
    if flt.created_before:
        query = query.where(run.created < flt.created_before)
    return query


_SORTS: dict[FlowRunSort, tuple[Any, ...]] = {
    FlowRunSort.CREATED_DESC: (orm.FlowRun.created.desc(), orm.FlowRun.id.desc()),
    FlowRunSort.CREATED_ASC: (orm.FlowRun.created.asc(), orm.FlowRun.id.asc()),
    FlowRunSort.EXPECTED_START_TIME_DESC: (
        orm.FlowRun.expected_start_time.desc(),
        orm.FlowRun.id.desc(),
    ),
    FlowRunSort.NAME_ASC: (orm.FlowRun.name.asc(), orm.FlowRun.id.asc()),
}


def _has_tags(dialect: str, tags: list[str]) -> Any:
    """Runs carrying every one of ``tags``, in SQL (a filter in Python after LIMIT would
    miss matches beyond its window)."""
    run = orm.FlowRun
    if dialect == "postgresql":
        return type_coerce(run.tags, JSONB).contains(list(tags))
    clauses = []
    for tag in dict.fromkeys(tags):
        each = func.json_each(run.tags).table_valued("value")
        clauses.append(select(literal(1)).select_from(each).where(each.c.value == tag).exists())
    return and_(*clauses)


def filter_flow_runs(session: Session, flt: FlowRunFilter) -> Sequence[tuple[orm.FlowRun, str]]:
    """A page of runs with their flow names. Always bounded by ``limit``."""
    query = _filtered(
        select(orm.FlowRun, orm.Flow.name).join(orm.Flow, orm.Flow.id == orm.FlowRun.flow_id),
        flt,
    )
    if flt.tags_all:
        query = query.where(_has_tags(session.get_bind().dialect.name, flt.tags_all))
    query = query.order_by(*_SORTS[flt.sort]).limit(flt.limit).offset(flt.offset)
    return [(r, n) for r, n in (session.execute(query)).all()]


def delete_flow_run(session: Session, flow_run_id: uuid.UUID) -> bool:
    result = cast(
        CursorResult[Any],
        session.execute(delete(orm.FlowRun).where(orm.FlowRun.id == flow_run_id)),
    )
    return bool(result.rowcount)


def flow_name_of(session: Session, run: orm.FlowRun) -> str | None:
    flow = session.get(orm.Flow, run.flow_id)
    return flow.name if flow else None
