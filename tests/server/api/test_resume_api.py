"""POST /api/flow_runs/{id}/resume and the rules around paused runs (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio

MakeRun = Callable[..., Awaitable[dict[str, Any]]]
RowCounts = Callable[[], Awaitable[dict[str, int]]]

SCHEMA = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}, "rows": {"type": "integer"}},
    "required": ["approved"],
}


def _in(seconds: float) -> str:
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return when.isoformat()


async def _propose(client: httpx.AsyncClient, run_id: str, state: dict[str, Any]) -> Any:
    response = await client.post(f"/flow_runs/{run_id}/set_state", json={"state": state})
    assert response.status_code == 200, response.text
    return response.json()


async def _paused_run(
    client: httpx.AsyncClient,
    make_run: MakeRun,
    *,
    schema: dict[str, Any] | None = None,
    suspended: bool = False,
    expires_in: float = 3600,
) -> str:
    run_id = str((await make_run(state={"type": "RUNNING"}))["id"])
    details: dict[str, Any] = {
        "pause_timeout": _in(expires_in),
        "pause_reschedule": suspended,
        "pause_key": "pause-1",
    }
    if schema is not None:
        details["run_input_schema"] = schema
    paused = {
        "type": "PAUSED",
        "name": "Suspended" if suspended else "Paused",
        "state_details": details,
    }
    assert (await _propose(client, run_id, paused))["status"] == "ACCEPT"
    return run_id


async def _run(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    data: dict[str, Any] = (await client.get(f"/flow_runs/{run_id}")).json()
    return data


async def test_resuming_a_pause_makes_it_running_again_in_the_same_attempt(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    run_id = await _paused_run(client, make_run)
    response = await client.post(f"/flow_runs/{run_id}/resume", json={})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "ACCEPT"
    assert (result["state"]["type"], result["state"]["name"]) == ("RUNNING", "Resumed")
    assert result["state"]["state_details"]["pause_key"] == "pause-1"
    run = await _run(client, run_id)
    assert (run["state_type"], run["run_count"]) == ("RUNNING", 1)  # not a new attempt


async def test_input_is_checked_against_the_pause_schema_and_stored(
    client: httpx.AsyncClient, make_run: MakeRun, row_counts: RowCounts
) -> None:
    run_id = await _paused_run(client, make_run, schema=SCHEMA)
    before = await row_counts()

    bad = await client.post(
        f"/flow_runs/{run_id}/resume", json={"run_input": {"approved": "yes", "rows": 1}}
    )
    assert bad.status_code == 422, bad.text
    assert bad.json()["errors"] == [
        {"field": "run_input.approved", "message": "'yes' is not of type 'boolean'"}
    ]
    assert "run_input.approved" in bad.json()["detail"]
    missing = await client.post(f"/flow_runs/{run_id}/resume", json={"run_input": {"rows": 1}})
    assert missing.status_code == 422
    assert missing.json()["errors"] == [{"field": "run_input.approved", "message": "is required"}]
    none = await client.post(f"/flow_runs/{run_id}/resume")
    assert none.status_code == 422 and none.json()["errors"][0]["field"] == "run_input"
    assert await row_counts() == before  # nothing written
    assert (await _run(client, run_id))["state_type"] == "PAUSED"

    good = await client.post(
        f"/flow_runs/{run_id}/resume", json={"run_input": {"approved": True, "rows": 3}}
    )
    assert good.status_code == 200, good.text
    states = (await client.get(f"/flow_runs/{run_id}/states")).json()
    assert states[-1]["name"] == "Resumed"
    assert states[-1]["details"]["run_input"] == {"approved": True, "rows": 3}


async def test_resuming_a_suspension_schedules_the_run_again(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    run_id = await _paused_run(client, make_run, suspended=True)
    result = (await client.post(f"/flow_runs/{run_id}/resume", json={"run_input": {"a": 1}})).json()
    assert (result["state"]["type"], result["state"]["name"]) == ("SCHEDULED", "Resumed")
    assert result["state"]["state_details"]["scheduled_time"] is not None
    assert (await _run(client, run_id))["state_type"] == "SCHEDULED"
    # Run again, it is the same attempt going on: suspending uses up no retries.
    for state_type in ("PENDING", "RUNNING"):
        assert (await _propose(client, run_id, {"type": state_type}))["status"] == "ACCEPT"
    assert (await _run(client, run_id))["run_count"] == 1


async def test_only_a_paused_run_with_a_live_pause_can_be_resumed(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    running = str((await make_run(state={"type": "RUNNING"}))["id"])
    response = await client.post(f"/flow_runs/{running}/resume", json={})
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "The run is Running (RUNNING), not paused; only a paused run can be resumed."
    )

    expired = await _paused_run(client, make_run, expires_in=-1)
    response = await client.post(f"/flow_runs/{expired}/resume", json={})
    assert response.status_code == 409
    assert "The pause expired at" in response.json()["detail"]
    assert (await _run(client, expired))["state_type"] == "PAUSED"

    missing = await client.post("/flow_runs/00000000-0000-0000-0000-000000000000/resume", json={})
    assert missing.status_code == 404

    unknown_field = await client.post(f"/flow_runs/{running}/resume", json={"input": {}})
    assert unknown_field.status_code == 422


async def test_a_paused_run_continues_only_through_a_resume(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    run_id = await _paused_run(client, make_run)
    for state_type in ("RUNNING", "PENDING", "SCHEDULED"):
        result = await _propose(client, run_id, {"type": state_type})
        assert result["status"] == "ABORT"
        assert "only a resume" in result["reason"]
    # It can still end.
    assert (await _propose(client, run_id, {"type": "FAILED"}))["status"] == "ACCEPT"


async def test_cancelling_a_pause_asks_its_process_and_a_suspension_ends_at_once(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    paused = await _paused_run(client, make_run)
    result = (await client.post(f"/flow_runs/{paused}/cancel")).json()
    assert result["state"]["type"] == "CANCELLING"  # its process waits and is told

    suspended = await _paused_run(client, make_run, suspended=True)
    result = (await client.post(f"/flow_runs/{suspended}/cancel")).json()
    assert result["state"]["type"] == "CANCELLED"  # no process left to tell
