"""POST /api/flow_runs/{id}/retry: a finished deployment run is scheduled again, due now
(SQLite and PostgreSQL); anything else is a 409 with the reason, or a 404."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio

MakeRun = Callable[..., Awaitable[dict[str, Any]]]


async def _ok(response: httpx.Response) -> Any:
    assert response.status_code < 300, response.text
    return response.json()


async def _deployment_run(client: httpx.AsyncClient, final: str) -> str:
    body = {"flow_name": "etl", "name": "daily", "entrypoint": "etl.py:etl"}
    deployment = await _ok(await client.post("/deployments/", json=body))
    run = await _ok(await client.post(f"/deployments/{deployment['id']}/create_flow_run", json={}))
    for type_ in ("PENDING", "RUNNING", final):
        state = {"state": {"type": type_, "message": "boom" if final == "FAILED" else None}}
        await _ok(await client.post(f"/flow_runs/{run['id']}/set_state", json=state))
    return str(run["id"])


async def test_a_failed_deployment_run_is_scheduled_again_due_now(
    client: httpx.AsyncClient,
) -> None:
    run_id = await _deployment_run(client, "FAILED")
    result = await _ok(await client.post(f"/flow_runs/{run_id}/retry"))
    assert result["status"] == "ACCEPT"
    assert (result["state"]["type"], result["state"]["name"]) == ("SCHEDULED", "AwaitingRetry")
    run = await _ok(await client.get(f"/flow_runs/{run_id}"))
    assert (run["state_type"], run["state_name"], run["end_time"]) == (
        "SCHEDULED",
        "AwaitingRetry",
        None,
    )
    # A run that completed may be retried too (the cancel route's rules are not in the way).
    done = await _deployment_run(client, "COMPLETED")
    assert (await client.post(f"/flow_runs/{done}/retry")).status_code == 200


async def test_a_run_that_cannot_be_retried_is_409_with_the_reason(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    local = await make_run(name="local-run", state={"type": "FAILED"})
    response = await client.post(f"/flow_runs/{local['id']}/retry")
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert detail == (
        "Run 'local-run' was not made from a deployment, so no worker can start it again; "
        "run its flow again instead."
    )
    running = await make_run(name="busy", state={"type": "RUNNING"})
    response = await client.post(f"/flow_runs/{running['id']}/retry")
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "Run 'busy' is Running: only a finished run can be retried."
    )
    states = (await client.get(f"/flow_runs/{running['id']}/states")).json()
    assert [s["type"] for s in states] == ["RUNNING"]  # nothing written


async def test_an_unknown_run_is_404(client: httpx.AsyncClient) -> None:
    missing = uuid.UUID(int=7)
    response = await client.post(f"/flow_runs/{missing}/retry")
    assert response.status_code == 404
    assert response.json()["detail"] == f"No flow run with id {missing}."
    assert (await client.post("/flow_runs/not-an-id/retry")).status_code == 422
