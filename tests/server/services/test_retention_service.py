"""Retention: finished runs older than the age go, with everything recorded for them."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from conveyor.server.database import orm
from conveyor.server.database.engine import Database
from conveyor.server.services.retention import Retention

pytestmark = pytest.mark.anyio

NOW = datetime.datetime.now(datetime.timezone.utc)
# The service's clock runs 40 days ahead; with a 30-day age, what ended before NOW + 10
# days is old.
LATER = NOW + datetime.timedelta(days=40)
RECENT = (NOW + datetime.timedelta(days=20)).isoformat()


async def post(client: httpx.AsyncClient, path: str, body: Any) -> Any:
    response = await client.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def run_with_records(
    client: httpx.AsyncClient, *, end: str | None, parent: str | None = None
) -> str:
    """A run with a task run, a log and an artifact; Completed at ``end`` unless None."""
    body = {"flow_name": "etl", "name": "r", "state": {"type": "RUNNING"}}
    run_id = str((await post(client, "/flow_runs/", {**body, "parent_flow_run_id": parent}))["id"])
    task = {"id": str(uuid.uuid4()), "flow_run_id": run_id, "name": "t-0", "task_key": "etl.t"}
    log = {"id": str(uuid.uuid4()), "flow_run_id": run_id, "name": "l", "level": 20}
    log |= {"message": "hi", "timestamp": NOW.isoformat()}
    await post(
        client,
        "/records",
        {"task_runs": [{**task, "dynamic_key": "0", "created": NOW.isoformat()}], "logs": [log]},
    )
    await post(client, "/artifacts/", {"type": "markdown", "data": "#", "flow_run_id": run_id})
    if end is not None:
        state = {"type": "COMPLETED", "timestamp": end}
        await post(client, f"/flow_runs/{run_id}/set_state", {"state": state})
    return run_id


async def orphan_log(client: httpx.AsyncClient, timestamp: str) -> None:
    log = {"id": str(uuid.uuid4()), "name": "l", "level": 20, "message": "m"}
    await post(client, "/records", {"logs": [{**log, "timestamp": timestamp}]})


def _counts(session: Session) -> dict[str, int]:
    tables = (orm.FlowRun, orm.FlowRunState, orm.TaskRun, orm.Log, orm.Artifact)
    return {
        str(t.__tablename__): session.execute(select(func.count()).select_from(t)).scalar_one()
        for t in tables
    }


async def test_deletes_old_finished_runs_with_their_records(
    client: httpx.AsyncClient, database: Database
) -> None:
    old = [await run_with_records(client, end=NOW.isoformat()) for _ in range(2)]
    recent = await run_with_records(client, end=RECENT)
    unfinished = await run_with_records(client, end=None)
    child = await run_with_records(client, end=RECENT, parent=old[0])
    await orphan_log(client, NOW.isoformat())
    await orphan_log(client, RECENT)
    before = await database.read(_counts)
    assert before == {
        "flow_runs": 5,
        "flow_run_states": 9,
        "task_runs": 5,
        "logs": 7,
        "artifacts": 5,
    }
    service = Retention(database, retention_days=30, batch_size=1)

    assert await service.run_once(NOW) == 0  # nothing is 30 days old yet
    assert await service.run_once(LATER) == 2  # a run (of two), and the old orphan log
    assert await service.run_once(LATER) == 1
    assert await service.run_once(LATER) == 0

    assert await database.read(_counts) == {
        "flow_runs": 3,
        "flow_run_states": 5,
        "task_runs": 3,
        "logs": 4,
        "artifacts": 3,
    }
    for run_id in old:
        assert (await client.get(f"/flow_runs/{run_id}")).status_code == 404
    for run_id in (recent, unfinished, child):
        assert (await client.get(f"/flow_runs/{run_id}")).status_code == 200
    assert (await client.get(f"/flow_runs/{child}")).json()["parent_flow_run_id"] is None
    logs = await post(client, "/logs/filter", {})
    assert sorted(log["flow_run_id"] is None for log in logs) == [False, False, False, True]
