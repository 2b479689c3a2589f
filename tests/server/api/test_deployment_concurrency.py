"""A deployment's concurrency limit at claim time, with either collision strategy
(SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
    response = await client.post(path, json=body)
    assert response.status_code < 300, response.text
    return response.json()


async def deploy(client: httpx.AsyncClient, name: str, **fields: Any) -> str:
    body = {"flow_name": "etl", "name": name, "entrypoint": "f.py:etl", "work_pool_name": "p"}
    return str((await post(client, "/deployments/", {**body, **fields}))["id"])


async def runs(client: httpx.AsyncClient, deployment_id: str, count: int) -> list[str]:
    path = f"/deployments/{deployment_id}/create_flow_run"
    return [str((await post(client, path, {}))["id"]) for _ in range(count)]


async def claim(client: httpx.AsyncClient, limit: int = 10) -> list[str]:
    result = await post(client, "/work_pools/p/claim", {"worker_name": "w", "limit": limit})
    return [str(run["flow_run"]["id"]) for run in result["runs"]]


async def finish(client: httpx.AsyncClient, run_id: str) -> None:
    for type_ in ("RUNNING", "COMPLETED"):
        await post(client, f"/flow_runs/{run_id}/set_state", {"state": {"type": type_}})


async def state_type(client: httpx.AsyncClient, run_id: str) -> str:
    run: dict[str, Any] = (await client.get(f"/flow_runs/{run_id}")).json()
    return str(run["state_type"])


async def test_enqueue_keeps_runs_over_the_limit_scheduled_until_a_slot_frees(
    client: httpx.AsyncClient,
) -> None:
    await post(client, "/work_pools/", {"name": "p"})
    limited = await deploy(client, "limited", concurrency_limit=2)
    free = await deploy(client, "free")
    first, second, third = await runs(client, limited, 3)
    other = (await runs(client, free, 1))[0]

    # The limited deployment's third run waits; the other deployment's run is not held up.
    assert await claim(client) == [first, second, other]
    assert await state_type(client, third) == "SCHEDULED"
    assert await claim(client) == []

    await finish(client, first)
    assert await claim(client) == [third]


async def test_a_full_batch_of_waiting_runs_does_not_starve_other_deployments(
    client: httpx.AsyncClient,
) -> None:
    await post(client, "/work_pools/", {"name": "p"})
    limited = await deploy(client, "limited", concurrency_limit=1)
    free = await deploy(client, "free")
    held = await runs(client, limited, 4)
    other = (await runs(client, free, 1))[0]

    assert await claim(client, limit=1) == [held[0]]
    assert await claim(client, limit=1) == [other]  # not the limited deployment's next runs


async def test_cancel_new_cancels_a_due_run_over_the_limit(client: httpx.AsyncClient) -> None:
    await post(client, "/work_pools/", {"name": "p"})
    limited = await deploy(client, "limited", concurrency_limit=1, collision_strategy="CANCEL_NEW")
    first, second = await runs(client, limited, 2)

    assert await claim(client) == [first]
    assert await state_type(client, second) == "CANCELLED"
    message = (await client.get(f"/flow_runs/{second}/states")).json()[-1]["message"]
    assert "concurrency limit (1) was full" in message
    assert "CANCEL_NEW" in message

    await finish(client, first)
    third = (await runs(client, limited, 1))[0]
    assert await claim(client) == [third]
