"""The policy through POST /api/flow_runs/{id}/set_state: what a client actually reads."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio


async def _new_run(client: httpx.AsyncClient, **fields: Any) -> str:
    response = await client.post("/flow_runs/", json={"flow_name": "etl", "name": "r", **fields})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _propose(
    client: httpx.AsyncClient, run_id: str, state: dict[str, Any], **body: Any
) -> dict[str, Any]:
    response = await client.post(f"/flow_runs/{run_id}/set_state", json={"state": state, **body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert set(result) == {"status", "state", "reason", "delay_seconds"}
    assert result["reason"], result  # always a reason, whatever the status
    return result


async def _history(client: httpx.AsyncClient, run_id: str) -> list[str]:
    return [s["name"] for s in (await client.get(f"/flow_runs/{run_id}/states")).json()]


async def test_every_outcome_through_the_api(client: httpx.AsyncClient) -> None:
    run_id = await _new_run(client, retries=1, retry_delay_seconds=0)
    transition = str(uuid.uuid4())
    running = {"type": "RUNNING", "state_details": {"transition_id": transition}}

    accepted = await _propose(client, run_id, running)
    assert accepted["status"] == "ACCEPT"
    assert accepted["state"]["type"] == "RUNNING"
    assert accepted["state"]["state_details"]["transition_id"] == transition
    repeated = await _propose(client, run_id, running)
    assert repeated["status"] == "ACCEPT"
    assert repeated["state"]["timestamp"] == accepted["state"]["timestamp"]
    assert await _history(client, run_id) == ["Pending", "Running"]

    rejected = await _propose(client, run_id, {"type": "FAILED", "message": "boom"})
    assert rejected["status"] == "REJECT"
    assert (rejected["state"]["type"], rejected["state"]["name"]) == ("SCHEDULED", "AwaitingRetry")
    assert rejected["state"]["message"] == "boom"
    assert rejected["state"]["state_details"]["scheduled_time"] is not None

    assert (await _propose(client, run_id, {"type": "RUNNING", "name": "Retrying"}))["status"] == (
        "ACCEPT"
    )
    assert (await _propose(client, run_id, {"type": "FAILED"}))["status"] == "ACCEPT"

    aborted = await _propose(client, run_id, {"type": "RUNNING"})
    assert aborted["status"] == "ABORT"
    assert aborted["state"]["type"] == "FAILED"
    assert "already Failed (FAILED)" in aborted["reason"]

    forced = await _propose(client, run_id, {"type": "COMPLETED"}, force=True)
    assert forced["status"] == "ACCEPT"
    run = (await client.get(f"/flow_runs/{run_id}")).json()
    assert (run["state_type"], run["run_count"]) == ("COMPLETED", 2)
    assert await _history(client, run_id) == [
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "Failed",
        "Completed",
    ]


async def test_wait_says_how_long(client: httpx.AsyncClient) -> None:
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=120)
    scheduled = {"type": "SCHEDULED", "state_details": {"scheduled_time": when.isoformat()}}
    run_id = await _new_run(client, state=scheduled)
    result = await _propose(client, run_id, {"type": "PENDING"})
    assert result["status"] == "WAIT"
    assert 100 < result["delay_seconds"] <= 120
    assert result["state"]["type"] == "SCHEDULED"
    assert await _history(client, run_id) == ["Scheduled"]


async def _cancel(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await client.post(f"/flow_runs/{run_id}/cancel")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_cancelling_a_run_that_has_not_started_cancels_it_at_once(
    client: httpx.AsyncClient,
) -> None:
    run_id = await _new_run(client)  # Pending
    result = await _cancel(client, run_id)
    assert (result["status"], result["state"]["type"]) == ("ACCEPT", "CANCELLED")
    assert await _history(client, run_id) == ["Pending", "Cancelled"]


async def test_a_running_run_is_cancelling_until_it_reports_then_cancelled(
    client: httpx.AsyncClient,
) -> None:
    run_id = await _new_run(client, state={"type": "RUNNING"})
    result = await _cancel(client, run_id)
    assert (result["status"], result["state"]["type"]) == ("ACCEPT", "CANCELLING")
    # Whatever the engine reports next, the run ends Cancelled, and the answer says so.
    done = await _propose(client, run_id, {"type": "COMPLETED"})
    assert (done["status"], done["state"]["type"]) == ("REJECT", "CANCELLED")
    assert "being cancelled" in done["reason"]
    assert await _history(client, run_id) == ["Running", "Cancelling", "Cancelled"]


async def test_a_finished_run_cannot_be_cancelled(client: httpx.AsyncClient) -> None:
    run_id = await _new_run(client, state={"type": "COMPLETED"})
    result = await _cancel(client, run_id)
    assert result["status"] == "ABORT"
    assert "already Completed" in result["reason"]
    assert await _history(client, run_id) == ["Completed"]


async def test_cancelling_an_unknown_run_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/flow_runs/{uuid.uuid4()}/cancel")
    assert response.status_code == 404
    assert "No flow run" in response.json()["detail"]
