"""LateRuns: Scheduled runs past their time by more than the threshold become Late."""

from __future__ import annotations

import datetime
from typing import Any

import httpx
import pytest

from conveyor.server.database.engine import Database
from conveyor.server.services.late_runs import LateRuns

pytestmark = pytest.mark.anyio

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def scheduled(seconds_from_now: float) -> dict[str, Any]:
    when = NOW + datetime.timedelta(seconds=seconds_from_now)
    return {"type": "SCHEDULED", "state_details": {"scheduled_time": when.isoformat()}}


async def new_run(client: httpx.AsyncClient, state: dict[str, Any]) -> str:
    response = await client.post(
        "/flow_runs/", json={"flow_name": "etl", "name": "r", "state": state}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def state_name(client: httpx.AsyncClient, run_id: str) -> str:
    run = (await client.get(f"/flow_runs/{run_id}")).json()
    return f"{run['state_type']}/{run['state_name']}"


async def history(client: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    states: list[dict[str, Any]] = (await client.get(f"/flow_runs/{run_id}/states")).json()
    return states


async def test_marks_only_scheduled_runs_past_the_threshold(
    client: httpx.AsyncClient, database: Database
) -> None:
    late = await new_run(client, scheduled(-60))
    recent = await new_run(client, scheduled(-5))
    future = await new_run(client, scheduled(3600))
    running = await new_run(client, {"type": "RUNNING"})
    service = LateRuns(database, after_seconds=15)

    assert await service.run_once(NOW) == 1

    assert await state_name(client, late) == "SCHEDULED/Late"
    assert await state_name(client, recent) == "SCHEDULED/Scheduled"
    assert await state_name(client, future) == "SCHEDULED/Scheduled"
    assert await state_name(client, running) == "RUNNING/Running"
    states = await history(client, late)
    assert [s["name"] for s in states] == ["Scheduled", "Late"]
    kept = datetime.datetime.fromisoformat(states[-1]["details"]["scheduled_time"])
    assert kept == NOW - datetime.timedelta(seconds=60)
    assert "60 s" in states[-1]["message"]

    # A second pass changes nothing; later, the recent run is late too.
    assert await service.run_once(NOW) == 0
    assert [s["name"] for s in await history(client, late)] == ["Scheduled", "Late"]
    assert await service.run_once(NOW + datetime.timedelta(seconds=20)) == 1
    assert await state_name(client, recent) == "SCHEDULED/Late"


async def test_a_late_run_can_still_start(client: httpx.AsyncClient, database: Database) -> None:
    run = await new_run(client, scheduled(-60))
    await LateRuns(database).run_once(NOW)
    for type_ in ("PENDING", "RUNNING"):
        response = await client.post(f"/flow_runs/{run}/set_state", json={"state": {"type": type_}})
        assert response.json()["status"] == "ACCEPT", response.text
    names = [s["name"] for s in await history(client, run)]
    assert names == ["Scheduled", "Late", "Pending", "Running"]


async def test_a_backlog_is_marked_batch_by_batch(
    client: httpx.AsyncClient, database: Database
) -> None:
    runs = [await new_run(client, scheduled(-100 + i)) for i in range(5)]
    service = LateRuns(database, batch_size=2)
    assert [await service.run_once(NOW) for _ in range(4)] == [2, 2, 1, 0]
    assert [await state_name(client, r) for r in runs] == ["SCHEDULED/Late"] * 5
