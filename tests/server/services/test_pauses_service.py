"""The pauses service fails expired pauses; the reaper spares suspended runs but not a
paused run whose process went silent (SQLite and PostgreSQL). Time is injected."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from conveyor.server.database import orm
from conveyor.server.database.engine import Database
from conveyor.server.services.pauses import PauseExpiry
from conveyor.server.services.reaper import Reaper

pytestmark = pytest.mark.anyio


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
    response = await client.post(path, json=body)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


async def deployment_run(client: httpx.AsyncClient) -> str:
    """A deployment's run, claimed by a worker and running."""
    await post(client, "/work_pools/", {"name": "local"})
    body = {"flow_name": "etl", "name": "d", "entrypoint": "f.py:etl", "work_pool_name": "local"}
    deployment_id = (await post(client, "/deployments/", body))["id"]
    run = await post(client, f"/deployments/{deployment_id}/create_flow_run", {})
    await post(client, "/work_pools/local/claim", {"worker_name": "w", "limit": 1})
    await post(client, f"/flow_runs/{run['id']}/set_state", {"state": {"type": "RUNNING"}})
    return str(run["id"])


async def pause(
    client: httpx.AsyncClient, run_id: str, seconds: float, *, suspended: bool
) -> datetime.datetime:
    deadline = now() + datetime.timedelta(seconds=seconds)
    state = {
        "type": "PAUSED",
        "name": "Suspended" if suspended else "Paused",
        "state_details": {
            "pause_timeout": deadline.isoformat(),
            "pause_reschedule": suspended,
            "pause_key": "pause-1",
        },
    }
    result = await post(client, f"/flow_runs/{run_id}/set_state", {"state": state})
    assert result["status"] == "ACCEPT"
    return deadline


async def local_run(client: httpx.AsyncClient) -> str:
    body = {"flow_name": "etl", "name": "r", "state": {"type": "RUNNING"}}
    return str((await post(client, "/flow_runs/", body))["id"])


async def state(client: httpx.AsyncClient, run_id: str) -> str:
    run = (await client.get(f"/flow_runs/{run_id}")).json()
    return f"{run['state_type']}/{run['state_name']}"


def heartbeat(session: Session, run_id: str, when: datetime.datetime) -> None:
    query = update(orm.FlowRun).where(orm.FlowRun.id == uuid.UUID(run_id))
    session.execute(query.values(last_heartbeat=when))


async def test_an_expired_suspended_run_fails_and_a_live_one_waits(
    client: httpx.AsyncClient, database: Database
) -> None:
    suspended = await deployment_run(client)
    deadline = await pause(client, suspended, 60, suspended=True)
    waiting = await local_run(client)
    await pause(client, waiting, 600, suspended=False)
    service = PauseExpiry(database)

    assert await service.run_once(now()) == 0  # nothing expired yet
    assert await state(client, suspended) == "PAUSED/Suspended"

    later = now() + datetime.timedelta(seconds=120)
    assert await service.run_once(later) == 1
    assert await state(client, suspended) == "FAILED/Failed"
    assert await state(client, waiting) == "PAUSED/Paused"
    message = (await client.get(f"/flow_runs/{suspended}/states")).json()[-1]["message"]
    assert message == (
        "The run was suspended (pause 'pause-1') and not resumed before its pause expired "
        f"at {deadline.isoformat()}."
    )
    assert await service.run_once(later) == 0  # idempotent

    resumed = await client.post(f"/flow_runs/{suspended}/resume", json={})
    assert resumed.status_code == 409  # failed: no longer paused


async def test_a_pass_reads_one_batch_and_the_next_pass_goes_on(
    client: httpx.AsyncClient, database: Database
) -> None:
    runs = [await local_run(client) for _ in range(3)]
    for run_id in runs:
        await pause(client, run_id, 1, suspended=False)
    service = PauseExpiry(database, batch_size=2)
    later = now() + datetime.timedelta(seconds=10)
    assert await service.run_once(later) == 2  # a full batch
    assert await service.run_once(later) == 1  # the rest, from where it stopped
    assert [await state(client, r) for r in runs] == ["FAILED/Failed"] * 3


async def test_the_reaper_spares_a_suspended_run_but_not_a_silent_pause(
    client: httpx.AsyncClient, database: Database
) -> None:
    suspended = await deployment_run(client)
    await pause(client, suspended, 3600, suspended=True)
    paused = await local_run(client)
    await post(client, f"/flow_runs/{paused}/heartbeat", {})
    await pause(client, paused, 3600, suspended=False)
    alive = await local_run(client)
    await post(client, f"/flow_runs/{alive}/heartbeat", {})
    await pause(client, alive, 3600, suspended=False)
    later = now() + datetime.timedelta(seconds=100)
    await database.write(heartbeat, alive, later)

    assert await Reaper(database, after_seconds=90).run_once(later) == 1
    assert await state(client, paused) == "CRASHED/Crashed"  # its waiting process died
    assert await state(client, suspended) == "PAUSED/Suspended"  # exited on purpose
    assert await state(client, alive) == "PAUSED/Paused"  # still heartbeating
