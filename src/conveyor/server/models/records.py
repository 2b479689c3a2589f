"""A record batch from an engine: the runs it started, task runs, their states and logs.

Each part is idempotent, so a repeated or retried batch changes nothing. Records of flow
runs the server does not know (e.g. deleted while the engine was still reporting) are
skipped, not refused: a batch that can never be accepted would otherwise be retried
forever.
"""

from __future__ import annotations

import datetime
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.schemas.api import RecordBatch, RecordBatchResult
from conveyor.server.database import orm
from conveyor.server.models import flow_runs, task_runs
from conveyor.server.models.common import insert_ignoring_duplicates


def record_batch(session: Session, batch: RecordBatch) -> RecordBatchResult:
    received = task_runs.moment(datetime.datetime.now(datetime.timezone.utc))
    # First the flow runs: the rest of the batch may belong to them.
    new_flow_runs = flow_runs.record_flow_runs(session, batch.flow_runs)
    known = _known_flow_runs(session, batch)
    runs = [r for r in batch.task_runs if _recordable(r.get("flow_run_id"), known)]
    new_task_runs, new_states = task_runs.record_task_runs(
        session, runs, batch.task_run_states, received
    )
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
        if _recordable(log.flow_run_id, known)
    ]
    new_logs = insert_ignoring_duplicates(session, orm.Log, log_rows)
    return RecordBatchResult(
        flow_runs=new_flow_runs,
        task_runs=new_task_runs,
        task_run_states=new_states,
        logs=new_logs,
    )


def _recordable(flow_run_id: uuid.UUID | None, known: set[int]) -> bool:
    """A record outside any flow run, or in one the server knows."""
    return flow_run_id is None or flow_run_id.int in known


def _known_flow_runs(session: Session, batch: RecordBatch) -> set[int]:
    """The flow runs named by the batch's task runs and logs that exist, by their ids'
    ints (a UUID's hash is a Python method, and a batch names one run hundreds of times)."""
    ids = {flow_run_id.int for r in batch.task_runs if (flow_run_id := r.get("flow_run_id"))}
    ids.update(log.flow_run_id.int for log in batch.logs if log.flow_run_id is not None)
    if not ids:
        return set()
    query = select(orm.FlowRun.id).where(orm.FlowRun.id.in_([uuid.UUID(int=i) for i in ids]))
    return {flow_run_id.int for flow_run_id in session.execute(query).scalars()}
