"""Filling a database with a big history fast: bulk inserts, not the API.

Runs are spread over the last 30 days, mostly Completed, some Failed, Crashed and
Cancelled, a few Running, Scheduled ahead and Late; each has ``tasks_per_run`` task runs
(with their state histories in the row, as the engine records them), one state row and
two log lines. Work pools with workers, and a deployment, complete the picture.
"""

from __future__ import annotations

import datetime
import random
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from conveyor.server.database import orm
from conveyor.server.database.engine import Database
from conveyor.server.models.common import insert_ignoring_duplicates

UTC = datetime.timezone.utc
CHUNK = 20_000
FLOWS = 20
STATES = [  # (type, name, weight)
    ("COMPLETED", "Completed", 85),
    ("FAILED", "Failed", 8),
    ("CRASHED", "Crashed", 2),
    ("CANCELLED", "Cancelled", 2),
    ("RUNNING", "Running", 1),
    ("SCHEDULED", "Scheduled", 1),
    ("SCHEDULED", "Late", 1),
]
Row = dict[str, Any]


def _runs(
    count: int, flows: list[uuid.UUID], deployment: uuid.UUID, now: datetime.datetime
) -> Iterator[tuple[Row, Row]]:
    rng = random.Random(5)
    span = 30 * 24 * 3600
    weights = [w for _, _, w in STATES]
    for i in range(count):
        state_type, state_name, _ = rng.choices(STATES, weights)[0]
        created = now - datetime.timedelta(seconds=span * (count - i) / count)
        start = created + datetime.timedelta(seconds=1)
        finished = state_type in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
        end = start + datetime.timedelta(seconds=rng.uniform(1, 120)) if finished else None
        expected = created
        if state_type == "SCHEDULED":
            offset = 3600 if state_name == "Scheduled" else -600
            expected = now + datetime.timedelta(seconds=offset + i % 3600)
        run_id, state_id = uuid.uuid4(), uuid.uuid4()
        state_time = end or (start if state_type == "RUNNING" else created)
        run = {
            "id": run_id,
            "flow_id": flows[i % len(flows)],
            "name": f"run-{i}",
            "parameters": {"n": i % 100},
            "tags": ["nightly"] if i % 10 == 0 else [],
            "deployment_id": deployment if i % 4 == 0 else None,
            "state_type": state_type,
            "state_name": state_name,
            "state_timestamp": state_time,
            "state_id": state_id,
            "expected_start_time": expected,
            "start_time": start if state_type != "SCHEDULED" else None,
            "end_time": end,
            "run_count": 1,
            "created": created,
            "updated": state_time,
        }
        state = {
            "id": state_id,
            "flow_run_id": run_id,
            "type": state_type,
            "name": state_name,
            "message": "Flow run failed: ValueError: bad row" if state_type == "FAILED" else None,
            "timestamp": state_time,
            "details": {},
        }
        yield run, state


def _tasks(run: Row, per_run: int) -> Iterator[Row]:
    created: datetime.datetime = run["created"]
    for j in range(per_run):
        start = created + datetime.timedelta(seconds=1 + j)
        end = start + datetime.timedelta(milliseconds=500)
        history = (("PENDING", start), ("RUNNING", start), ("COMPLETED", end))
        yield {
            "id": uuid.uuid4(),
            "flow_run_id": run["id"],
            "name": f"step-{j}",
            "task_key": "bench.step",
            "dynamic_key": str(j),
            "state_type": "COMPLETED",
            "state_name": "Completed",
            "state_timestamp": end,
            "state_seq": 3,
            "run_count": 1,
            "start_time": start,
            "end_time": end,
            "created": created,
            "states": [
                {
                    "seq": seq,
                    "type": type_,
                    "name": type_.title(),
                    "timestamp": at.isoformat(timespec="microseconds"),
                }
                for seq, (type_, at) in enumerate(history, start=1)
            ],
        }


def _logs(run: Row) -> list[Row]:
    return [
        {
            "key": uuid.uuid4(),
            "flow_run_id": run["id"],
            "name": "conveyor.flow_runs",
            "level": 20 if k == 0 else 40,
            "message": f"Beginning flow run {run['name']!r}" if k == 0 else "Finished",
            "timestamp": run["created"],
        }
        for k in range(2)
    ]


def _setup(session: Session) -> tuple[list[uuid.UUID], uuid.UUID]:
    now = datetime.datetime.now(UTC)
    flows = [orm.Flow(id=uuid.uuid4(), name=f"flow-{i}", tags=[]) for i in range(FLOWS)]
    session.add_all(flows)
    for p in range(3):
        pool = orm.WorkPool(id=uuid.uuid4(), name=f"pool-{p}", type="process", base_job_template={})
        session.add(pool)
        session.flush()
        for w in range(4):
            beat = now - datetime.timedelta(seconds=30 if w % 2 == 0 else 3600)
            session.add(
                orm.Worker(work_pool_id=pool.id, name=f"worker-{p}-{w}", last_heartbeat=beat)
            )
    session.flush()
    deployment = orm.Deployment(
        id=uuid.uuid4(),
        flow_id=flows[0].id,
        name="daily",
        entrypoint="flows.py:etl",
        collision_strategy="ENQUEUE",
    )
    session.add(deployment)
    session.flush()
    return [f.id for f in flows], deployment.id


def _insert(session: Session, chunk: list[tuple[Row, Row]], per_run: int) -> None:
    insert_ignoring_duplicates(session, orm.FlowRun, [run for run, _ in chunk])
    insert_ignoring_duplicates(session, orm.FlowRunState, [state for _, state in chunk])
    tasks = [task for run, _ in chunk for task in _tasks(run, per_run)]
    insert_ignoring_duplicates(session, orm.TaskRun, tasks)
    insert_ignoring_duplicates(session, orm.Log, [log for run, _ in chunk for log in _logs(run)])


async def seed(database: Database, flow_runs: int, tasks_per_run: int) -> uuid.UUID:
    """Fill ``database`` (migrated, empty); returns the id of the newest finished run."""
    flows, deployment = await database.write(_setup)
    now = datetime.datetime.now(UTC)
    chunk: list[tuple[Row, Row]] = []
    sample: uuid.UUID | None = None
    runs_per_chunk = max(CHUNK // max(tasks_per_run, 1), 1)
    for run, state in _runs(flow_runs, flows, deployment, now):
        if run["state_type"] == "COMPLETED":  # the newest finished run
            sample = run["id"]
        chunk.append((run, state))
        if len(chunk) >= runs_per_chunk:
            await database.write(_insert, chunk, tasks_per_run)
            chunk = []
    if chunk:
        await database.write(_insert, chunk, tasks_per_run)
    assert sample is not None
    return sample
