"""CancellationCleanup: stuck cancellations end, and a cancelled parent's children follow."""

from __future__ import annotations

import datetime
from typing import Any

import httpx
import pytest

from conveyor.server.database.engine import Database
from conveyor.server.services.cancellation import CancellationCleanup

pytestmark = pytest.mark.anyio


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


async def new_run(client: httpx.AsyncClient, state: str, **fields: Any) -> str:
    body = {"flow_name": "etl", "name": "r", "state": {"type": state}, **fields}
    response = await client.post("/flow_runs/", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def cancel(client: httpx.AsyncClient, run_id: str) -> None:
    response = await client.post(f"/flow_runs/{run_id}/cancel")
    assert response.status_code == 200, response.text


async def current(client: httpx.AsyncClient, run_id: str) -> tuple[str, str | None]:
    states = (await client.get(f"/flow_runs/{run_id}/states")).json()
    return states[-1]["type"], states[-1]["message"]


async def test_a_run_cancelling_too_long_becomes_cancelled(
    client: httpx.AsyncClient, database: Database
) -> None:
    stuck = await new_run(client, "RUNNING")
    await cancel(client, stuck)
    running = await new_run(client, "RUNNING")
    service = CancellationCleanup(database, timeout_seconds=120)

    assert await service.run_once(utcnow() + datetime.timedelta(seconds=60)) == 0
    assert (await current(client, stuck))[0] == "CANCELLING"

    later = utcnow() + datetime.timedelta(seconds=121)
    assert await service.run_once(later) == 1
    type_, message = await current(client, stuck)
    assert type_ == "CANCELLED"
    assert message is not None and "cancelling after 120 s" in message
    assert (await current(client, running))[0] == "RUNNING"
    assert await service.run_once(later) == 0


async def test_cancelling_a_parent_cancels_its_unfinished_children(
    client: httpx.AsyncClient, database: Database
) -> None:
    parent = await new_run(client, "RUNNING")
    running = await new_run(client, "RUNNING", parent_flow_run_id=parent)
    scheduled = await new_run(client, "SCHEDULED", parent_flow_run_id=parent)
    finished = await new_run(client, "COMPLETED", parent_flow_run_id=parent)
    grandchild = await new_run(client, "PENDING", parent_flow_run_id=running)
    unrelated = await new_run(client, "RUNNING")
    other_child = await new_run(client, "RUNNING", parent_flow_run_id=unrelated)
    service = CancellationCleanup(database)

    assert await service.run_once(utcnow()) == 0  # nothing is cancelled yet
    await cancel(client, parent)
    assert (await current(client, parent))[0] == "CANCELLING"

    assert await service.run_once(utcnow()) == 2
    assert await current(client, running) == ("CANCELLING", "Cancelled with its parent flow run.")
    assert await current(client, scheduled) == ("CANCELLED", "Cancelled with its parent flow run.")
    assert (await current(client, finished))[0] == "COMPLETED"
    assert (await current(client, other_child))[0] == "RUNNING"
    # The grandchild's parent is now Cancelling: it follows on the next pass.
    assert await service.run_once(utcnow()) == 1
    assert (await current(client, grandchild))[0] == "CANCELLED"
    assert await service.run_once(utcnow()) == 0
