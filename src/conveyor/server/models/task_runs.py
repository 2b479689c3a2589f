"""Task runs: recorded in batches from the engine, never orchestrated here.

Recording is idempotent and ordered per run: a state is keyed by ``(task_run_id, seq)``,
so a repeated batch inserts nothing, and a task run's current state only moves to a
higher ``seq``, so a late batch cannot roll it back.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from conveyor.schemas.api import RecordBatch, RecordBatchResult, TaskRunFilter
from conveyor.schemas.records import StateIn, TaskRunIn, TaskRunStateIn, stored_details
from conveyor.schemas.states import TERMINAL_STATE_TYPES, StateType, default_state_name
from conveyor.server.database import orm
from conveyor.server.database.types import Timestamp
from conveyor.server.models.common import insert_ignoring_duplicates, insert_returning_new_keys


def record_batch(session: Session, batch: RecordBatch) -> RecordBatchResult:
    """Record a batch in a handful of statements, however many runs it holds.

    New task runs are inserted with their current state already worked out from the
    batch; only runs recorded by an earlier batch need updating, in one executemany.
    """
    received = datetime.datetime.now(datetime.timezone.utc)
    # Records of flow runs the server does not know (e.g. deleted while the engine was
    # still reporting) are skipped, not refused: a batch that can never be accepted would
    # otherwise be retried forever.
    flow_runs = _known_flow_runs(session, batch)
    task_runs = [r for r in batch.task_runs if _recordable(r.get("flow_run_id"), flow_runs)]
    arriving = {run["id"] for run in task_runs}
    states = _known(session, batch.task_run_states, arriving)
    # A state repeated inside the batch is one state (the first, as the insert keeps it).
    states = list({(r["task_run_id"], r["seq"]): r for r in reversed(states)}.values())
    summaries = _summarise(states, received)
    task_rows = [_task_run_values(run, summaries.get(run["id"]), received) for run in task_runs]
    new_runs = {key[0] for key in insert_returning_new_keys(session, orm.TaskRun, task_rows)}
    state_rows = [_state_values(record, received) for record in states]
    new_states = set(insert_returning_new_keys(session, orm.TaskRunState, state_rows))
    late = [
        r
        for r in states
        if r["task_run_id"] not in new_runs and (r["task_run_id"], r["seq"]) in new_states
    ]
    _apply_to_existing_runs(session, _summarise(late, received))
    log_rows = [
        {
            "key": log.id,
            "flow_run_id": log.flow_run_id,
            "task_run_id": log.task_run_id,
            "name": log.name[:255],
            "level": log.level,
            "message": log.message,
            "timestamp": log.timestamp,
        }
        for log in batch.logs
        if _recordable(log.flow_run_id, flow_runs)
    ]
    new_logs = insert_ignoring_duplicates(session, orm.Log, log_rows)
    return RecordBatchResult(
        task_runs=len(new_runs), task_run_states=len(new_states), logs=new_logs
    )


def _recordable(flow_run_id: uuid.UUID | None, known: set[uuid.UUID]) -> bool:
    """A record outside any flow run, or in one the server knows."""
    return flow_run_id is None or flow_run_id in known


def _known_flow_runs(session: Session, batch: RecordBatch) -> set[uuid.UUID]:
    """The flow runs named by the batch's task runs and logs that exist."""
    ids = {flow_run_id for r in batch.task_runs if (flow_run_id := r.get("flow_run_id"))}
    ids.update(log.flow_run_id for log in batch.logs if log.flow_run_id is not None)
    if not ids:
        return set()
    query = select(orm.FlowRun.id).where(orm.FlowRun.id.in_(ids))
    return set(session.execute(query).scalars())


def _state_name(state: StateIn) -> str:
    # The column holds 50 characters; a user may name states freely.
    return (state.get("name") or default_state_name(state["type"]))[:50]


def _timestamp(state: StateIn, received: datetime.datetime) -> datetime.datetime:
    return state.get("timestamp") or received


@dataclasses.dataclass
class _Summary:
    """What a run's states in one batch say about the run."""

    latest: TaskRunStateIn
    runs: int = 0
    started: datetime.datetime | None = None
    ended: datetime.datetime | None = None


def _summarise(
    records: Sequence[TaskRunStateIn], received: datetime.datetime
) -> dict[uuid.UUID, _Summary]:
    summaries: dict[uuid.UUID, _Summary] = {}
    for record in records:
        summary = summaries.get(record["task_run_id"])
        if summary is None:
            summary = summaries[record["task_run_id"]] = _Summary(latest=record)
        elif record["seq"] > summary.latest["seq"]:
            summary.latest = record
        state = record["state"]
        timestamp = _timestamp(state, received)
        if state["type"] is StateType.RUNNING:
            summary.runs += 1
            if summary.started is None or timestamp < summary.started:
                summary.started = timestamp
        if state["type"] in TERMINAL_STATE_TYPES and (
            summary.ended is None or timestamp > summary.ended
        ):
            summary.ended = timestamp
    return summaries


def _task_run_values(
    run: TaskRunIn, summary: _Summary | None, received: datetime.datetime
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": run["id"],
        "flow_run_id": run.get("flow_run_id"),
        "name": run["name"],
        "task_key": run["task_key"],
        "task_version": run.get("task_version"),
        "dynamic_key": run["dynamic_key"],
        "map_index": run.get("map_index"),
        "tags": run.get("tags") or [],
        "task_inputs": [
            {"task_run_id": str(i["task_run_id"]), "parameter": i.get("parameter")}
            for i in run.get("task_inputs") or ()
        ],
        "cache_key": run.get("cache_key"),
        "state_type": None,
        "state_name": None,
        "state_timestamp": None,
        "state_seq": 0,
        "run_count": 0,
        "start_time": None,
        "end_time": None,
        "created": run["created"],
    }
    if summary is not None:
        latest = summary.latest
        values.update(
            state_type=latest["state"]["type"].value,
            state_name=_state_name(latest["state"]),
            state_timestamp=_timestamp(latest["state"], received),
            state_seq=latest["seq"],
            run_count=summary.runs,
            start_time=summary.started,
            end_time=summary.ended,
        )
    return values


def _apply_to_existing_runs(session: Session, summaries: dict[uuid.UUID, _Summary]) -> None:
    if not summaries:
        return
    table = cast(Table, orm.TaskRun.__table__)
    c = table.c
    now = datetime.datetime.now(datetime.timezone.utc)
    # The current state moves only forward in seq: a late batch cannot roll it back.
    session.execute(
        update(table)
        .where(c.id == bindparam("b_id"), c.state_seq < bindparam("b_seq"))
        .values(
            state_type=bindparam("b_type"),
            state_name=bindparam("b_name"),
            state_timestamp=bindparam("b_timestamp"),
            state_seq=bindparam("b_seq"),
        ),
        [
            {
                "b_id": task_run_id,
                "b_seq": s.latest["seq"],
                "b_type": s.latest["state"]["type"].value,
                "b_name": _state_name(s.latest["state"]),
                "b_timestamp": _timestamp(s.latest["state"], now),
            }
            for task_run_id, s in summaries.items()
        ],
    )
    session.execute(
        update(table)
        .where(c.id == bindparam("b_id"))
        .values(
            run_count=c.run_count + bindparam("b_runs"),
            start_time=func.coalesce(c.start_time, bindparam("b_started", type_=Timestamp)),
            end_time=func.coalesce(bindparam("b_ended", type_=Timestamp), c.end_time),
        ),
        [
            {"b_id": task_run_id, "b_runs": s.runs, "b_started": s.started, "b_ended": s.ended}
            for task_run_id, s in summaries.items()
        ],
    )


def _known(
    session: Session, records: Sequence[TaskRunStateIn], arriving: set[uuid.UUID]
) -> list[TaskRunStateIn]:
    """Drop states of task runs the server has never seen (their run record is missing)."""
    elsewhere = {r["task_run_id"] for r in records} - arriving
    found = set(arriving)
    if elsewhere:
        query = select(orm.TaskRun.id).where(orm.TaskRun.id.in_(elsewhere))
        found.update(session.execute(query).scalars())
    return [r for r in records if r["task_run_id"] in found]


def _state_values(record: TaskRunStateIn, received: datetime.datetime) -> dict[str, Any]:
    state = record["state"]
    result_ref = state.get("result_ref")
    return {
        "task_run_id": record["task_run_id"],
        "seq": record["seq"],
        "type": state["type"].value,
        "name": _state_name(state),
        "message": state.get("message"),
        "timestamp": _timestamp(state, received),
        "details": stored_details(state.get("state_details")),
        "result_ref": result_ref.model_dump(mode="json") if result_ref else None,
    }


def read_task_run(session: Session, task_run_id: uuid.UUID) -> orm.TaskRun | None:
    return session.get(orm.TaskRun, task_run_id)


def read_task_run_states(session: Session, task_run_id: uuid.UUID) -> Sequence[orm.TaskRunState]:
    result = session.execute(
        select(orm.TaskRunState)
        .where(orm.TaskRunState.task_run_id == task_run_id)
        .order_by(orm.TaskRunState.seq)
    )
    return result.scalars().all()


def filter_task_runs(session: Session, flt: TaskRunFilter) -> Sequence[orm.TaskRun]:
    run = orm.TaskRun
    query = select(run)
    if flt.flow_run_id:
        query = query.where(run.flow_run_id.in_(flt.flow_run_id))
    if flt.state_type:
        query = query.where(run.state_type.in_([s.value for s in flt.state_type]))
    if flt.name_like:
        # A literal, case-insensitive substring on both backends (LIKE alone is
        # case-sensitive on PostgreSQL only, and "%", "_" and backslash would be patterns).
        query = query.where(run.name.icontains(flt.name_like, autoescape=True))
    if flt.created_after:
        query = query.where(run.created >= flt.created_after)
    if flt.created_before:
        query = query.where(run.created < flt.created_before)
    query = query.order_by(run.created.desc(), run.id).limit(flt.limit).offset(flt.offset)
    return (session.execute(query)).scalars().all()
