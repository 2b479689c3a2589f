"""Reaper and Rescheduler: runs whose heartbeats stopped are Crashed, and crashed
deployment runs are scheduled again a bounded number of times (SQLite and PostgreSQL)."""

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
from conveyor.server.services.reaper import Reaper
from conveyor.server.services.rescheduler import Rescheduler

pytestmark = pytest.mark.anyio

LATER = datetime.timedelta(seconds=100)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
    response = await client.post(path, json=body)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


async def deployment(client: httpx.AsyncClient) -> str:
    await post(client, "/work_pools/", {"name": "local"})
    body = {"flow_name": "etl", "name": "d", "entrypoint": "f.py:etl", "work_pool_name": "local"}
    return str((await post(client, "/deployments/", body))["id"])


async def claimed_run(client: httpx.AsyncClient, deployment_id: str) -> str:
    run = await post(client, f"/deployments/{deployment_id}/create_flow_run", {})
    claim = await post(client, "/work_pools/local/claim", {"worker_name": "w", "limit": 1})
    assert [str(r["flow_run"]["id"]) for r in claim["runs"]] == [str(run["id"])]
    return str(run["id"])


async def local_run(client: httpx.AsyncClient) -> str:
    body = {"flow_name": "etl", "name": "r", "state": {"type": "RUNNING"}}
    return str((await post(client, "/flow_runs/", body))["id"])


async def state(client: httpx.AsyncClient, run_id: str) -> str:
    run = (await client.get(f"/flow_runs/{run_id}")).json()
    return f"{run['state_type']}/{run['state_name']}"


def heartbeat(session: Session, run_id: str, when: datetime.datetime) -> None:
    query = update(orm.FlowRun).where(orm.FlowRun.id == uuid.UUID(run_id))
    session.execute(query.values(last_heartbeat=when))


def worker_of(session: Session, run_id: str) -> uuid.UUID | None:
    found = session.get(orm.FlowRun, uuid.UUID(run_id))
    assert found is not None
    return found.worker_id


async def test_reaps_silent_claimed_runs_and_spares_live_and_local_ones(
    client: httpx.AsyncClient, database: Database
) -> None:
    deployment_id = await deployment(client)
    silent = await claimed_run(client, deployment_id)
    alive = await claimed_run(client, deployment_id)
    local = await local_run(client)  # never heartbeats: a plain `python my_flow.py`
    local_dead = await local_run(client)
    await post(client, f"/flow_runs/{local_dead}/heartbeat", {})
    reaper = Reaper(database, after_seconds=90)

    assert await reaper.run_once(now()) == 0  # nobody has been silent for 90 s yet

    # Later: the live run's worker still heartbeats; the others stopped.
    await database.write(heartbeat, alive, now() + LATER)
    assert await reaper.run_once(now() + LATER) == 2
    assert await state(client, silent) == "CRASHED/Crashed"
    assert await state(client, local_dead) == "CRASHED/Crashed"
    assert await state(client, alive) == "PENDING/Pending"
    assert await state(client, local) == "RUNNING/Running"
    message = (await client.get(f"/flow_runs/{silent}/states")).json()[-1]["message"]
    assert message.startswith("No heartbeat from its worker since ")
    assert await reaper.run_once(now() + LATER) == 0  # idempotent


async def test_reaps_a_run_whose_process_died_waiting_to_retry(
    client: httpx.AsyncClient, database: Database
) -> None:
    body = {"flow_name": "etl", "name": "r", "state": {"type": "RUNNING"}, "retries": 1}
    run = str((await post(client, "/flow_runs/", body))["id"])
    await post(client, f"/flow_runs/{run}/heartbeat", {})
    failed = await post(client, f"/flow_runs/{run}/set_state", {"state": {"type": "FAILED"}})
    assert failed["state"]["name"] == "AwaitingRetry"

    assert await Reaper(database, after_seconds=90).run_once(now() + LATER) == 1
    assert await state(client, run) == "CRASHED/Crashed"


async def test_reschedules_a_crashed_deployment_run_up_to_the_limit(
    client: httpx.AsyncClient, database: Database
) -> None:
    deployment_id = await deployment(client)
    run = await claimed_run(client, deployment_id)
    local = await local_run(client)
    await post(client, f"/flow_runs/{local}/set_state", {"state": {"type": "CRASHED"}})
    rescheduler = Rescheduler(database, max_attempts=2, delay_seconds=10)

    for attempt in (1, 2):
        await post(client, f"/flow_runs/{run}/set_state", {"state": {"type": "CRASHED"}})
        at = now()
        assert await rescheduler.run_once(at) == 1
        assert await rescheduler.run_once(at) == 0  # idempotent
        data = (await client.get(f"/flow_runs/{run}")).json()
        assert (data["state_type"], data["state_name"]) == ("SCHEDULED", "Rescheduled")
        assert await database.write(worker_of, run) is None
        last = (await client.get(f"/flow_runs/{run}/states")).json()[-1]
        assert last["message"] == f"Crashed; scheduled again (attempt {attempt} of 2)."
        when = datetime.datetime.fromisoformat(last["details"]["scheduled_time"])
        assert when == at + datetime.timedelta(seconds=10)
        # Any worker may claim it once due.
        claim = {"worker_name": "w2", "limit": 1, "prefetch_seconds": 11}
        claimed = await post(client, "/work_pools/local/claim", claim)
        assert [str(r["flow_run"]["id"]) for r in claimed["runs"]] == [run]

    await post(client, f"/flow_runs/{run}/set_state", {"state": {"type": "CRASHED"}})
    assert await rescheduler.run_once(now()) == 0  # out of attempts
    assert await state(client, run) == "CRASHED/Crashed"
    assert await state(client, local) == "CRASHED/Crashed"  # nobody could run it again


async def test_crashes_the_subflows_a_crashed_run_was_running_in_its_process(
    client: httpx.AsyncClient, database: Database
) -> None:
    parent = await local_run(client)
    await post(client, f"/flow_runs/{parent}/heartbeat", {})
    body = {"flow_name": "sub", "name": "c", "state": {"type": "RUNNING"}}
    child = str((await post(client, "/flow_runs/", {**body, "parent_flow_run_id": parent}))["id"])
    live_parent = await local_run(client)
    live_child = await post(client, "/flow_runs/", {**body, "parent_flow_run_id": live_parent})
    # A deployment run its worker claimed heartbeats for itself: the parent's crash is not its.
    deployment_id = await deployment(client)
    claimed = await claimed_run(client, deployment_id)
    await database.write(_adopt, claimed, parent)
    await database.write(heartbeat, claimed, now() + LATER)
    reaper = Reaper(database, after_seconds=90)

    assert await reaper.run_once(now()) == 0
    assert await reaper.run_once(now() + LATER) == 2  # the parent, then its subflow
    assert await state(client, parent) == "CRASHED/Crashed"
    assert await state(client, child) == "CRASHED/Crashed"
    message = (await client.get(f"/flow_runs/{child}/states")).json()[-1]["message"]
    assert message.startswith(f"Its parent flow run {parent} crashed")
    assert await state(client, str(live_child["id"])) == "RUNNING/Running"
    assert await state(client, claimed) == "PENDING/Pending"

    # A parent its worker reported Crashed: the subflow goes at the next pass.
    other = str(
        (await post(client, "/flow_runs/", {**body, "parent_flow_run_id": live_parent}))["id"]
    )
    await post(client, f"/flow_runs/{live_parent}/set_state", {"state": {"type": "CRASHED"}})
    assert await reaper.run_once(now()) == 2
    assert await state(client, other) == "CRASHED/Crashed"
    assert await reaper.run_once(now()) == 0


def _adopt(session: Session, run_id: str, parent_id: str) -> None:
    query = update(orm.FlowRun).where(orm.FlowRun.id == uuid.UUID(run_id))
    session.execute(query.values(parent_flow_run_id=uuid.UUID(parent_id)))
