"""Claiming runs (``POST /api/work_pools/{pool}/claim``) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any

import httpx
import pytest

from conveyor.server.api import claims

pytestmark = pytest.mark.anyio


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    data: dict[str, Any] = response.json()
    return data


async def _setup(client: httpx.AsyncClient, pool: str = "local", **pool_fields: Any) -> str:
    """A pool and a deployment ``etl/nightly`` in it; returns the deployment's id."""
    await _post(client, "/work_pools/", {"name": pool, **pool_fields})
    deployment = await _post(
        client,
        "/deployments/",
        {
            "flow_name": "etl",
            "name": "nightly",
            "entrypoint": "flows.py:etl",
            "source": {"kind": "local", "path": "/srv/code"},
            "work_pool_name": pool,
            "job_variables": {"env": {"STAGE": "prod", "DEBUG": "0"}},
        },
    )
    return str(deployment["id"])


async def _run(
    client: httpx.AsyncClient, deployment_id: str, *, in_seconds: float = 0, **fields: Any
) -> str:
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=in_seconds)
    body = {"scheduled_time": when.isoformat(), **fields}
    run = await _post(client, f"/deployments/{deployment_id}/create_flow_run", body)
    return str(run["id"])


async def _claim(
    client: httpx.AsyncClient, pool: str = "local", worker: str = "w1", **fields: Any
) -> dict[str, Any]:
    body = {"worker_name": worker, "limit": 10, **fields}
    return await _post(client, f"/work_pools/{pool}/claim", body)


def _ids(result: dict[str, Any]) -> list[str]:
    return [str(run["flow_run"]["id"]) for run in result["runs"]]


async def test_a_claim_gives_the_run_everything_a_worker_needs(client: httpx.AsyncClient) -> None:
    deployment_id = await _setup(client)
    run_id = await _run(
        client, deployment_id, parameters={"n": 3}, job_variables={"env": {"DEBUG": "1"}}
    )

    result = await _claim(client)
    assert _ids(result) == [run_id]
    claimed = result["runs"][0]
    assert claimed["flow_run"]["parameters"] == {"n": 3}
    assert claimed["flow_run"]["flow_name"] == "etl"
    assert claimed["entrypoint"] == "flows.py:etl"
    assert claimed["source"] == {"kind": "local", "path": "/srv/code"}
    assert claimed["work_queue_name"] == "default"
    assert claimed["base_job_template"]["job_configuration"]["working_dir"] == "{{ working_dir }}"
    # Pool defaults < deployment < run, env merged key by key.
    assert claimed["job_variables"]["env"] == {"STAGE": "prod", "DEBUG": "1"}
    assert claimed["job_variables"]["stream_output"] is True

    run = (await client.get(f"/flow_runs/{run_id}")).json()
    assert run["state_type"] == "PENDING"
    states = (await client.get(f"/flow_runs/{run_id}/states")).json()
    assert [s["type"] for s in states] == ["SCHEDULED", "PENDING"]
    assert states[-1]["message"] == "Claimed by worker 'w1'."
    workers = (await client.post("/work_pools/local/workers/filter", json={})).json()
    assert [(w["name"], w["id"]) for w in workers] == [("w1", result["worker_id"])]

    assert (await _claim(client, worker="w2"))["runs"] == []  # claimed once only


async def test_not_yet_due_runs_stay_unless_prefetched(client: httpx.AsyncClient) -> None:
    deployment_id = await _setup(client)
    later = await _run(client, deployment_id, in_seconds=60)
    assert (await _claim(client))["runs"] == []
    assert _ids(await _claim(client, prefetch_seconds=120)) == [later]


async def test_queues_by_priority_then_scheduled_time(client: httpx.AsyncClient) -> None:
    deployment_id = await _setup(client)
    await _post(client, "/work_pools/local/queues/", {"name": "urgent", "priority": 1})
    await client.patch("/work_pools/local/queues/default", json={"priority": 2})
    old = await _run(client, deployment_id, in_seconds=-30)
    new = await _run(client, deployment_id, in_seconds=-10)
    urgent = await _run(client, deployment_id, in_seconds=-1)
    # Runs of a deployment go to its queue; move one by redeploying is heavy: use PATCH.
    await client.patch(f"/deployments/{deployment_id}", json={"work_queue_name": "urgent"})
    urgent_new = await _run(client, deployment_id)
    assert _ids(await _claim(client, limit=1)) == [urgent_new]
    assert _ids(await _claim(client, limit=10)) == [old, new, urgent]


async def test_named_queues_only_and_unknown_queue_is_404(client: httpx.AsyncClient) -> None:
    deployment_id = await _setup(client)
    await _post(client, "/work_pools/local/queues/", {"name": "other"})
    await _run(client, deployment_id)
    assert (await _claim(client, queues=["other"]))["runs"] == []
    response = await client.post(
        "/work_pools/local/claim", json={"worker_name": "w", "queues": ["nope"]}
    )
    assert response.status_code == 404
    assert "no queue named 'nope'" in response.json()["detail"]
    assert (
        await client.post("/work_pools/none/claim", json={"worker_name": "w"})
    ).status_code == 404


async def test_pool_and_queue_concurrency_limits(client: httpx.AsyncClient) -> None:
    deployment_id = await _setup(client, concurrency_limit=3)
    await client.patch("/work_pools/local/queues/default", json={"concurrency_limit": 2})
    for _ in range(5):
        await _run(client, deployment_id)
    first = _ids(await _claim(client))
    assert len(first) == 2  # the queue's limit
    assert (await _claim(client))["runs"] == []

    # A finished run frees its slot.
    done = {"state": {"type": "COMPLETED"}, "force": True}
    await _post(client, f"/flow_runs/{first[0]}/set_state", done)
    assert len(_ids(await _claim(client))) == 1

    await client.patch("/work_pools/local/queues/default", json={"concurrency_limit": None})
    assert len(_ids(await _claim(client))) == 1  # the pool's limit: 3 active


async def test_paused_pool_queue_and_deployment_are_skipped(client: httpx.AsyncClient) -> None:
    deployment_id = await _setup(client)
    run_id = await _run(client, deployment_id)
    await client.patch("/work_pools/local", json={"paused": True})
    assert (await _claim(client))["runs"] == []
    await client.patch("/work_pools/local", json={"paused": False})
    await client.patch("/work_pools/local/queues/default", json={"paused": True})
    assert (await _claim(client))["runs"] == []
    await client.patch("/work_pools/local/queues/default", json={"paused": False})
    await client.patch(f"/deployments/{deployment_id}", json={"paused": True})
    assert (await _claim(client))["runs"] == []
    await client.patch(f"/deployments/{deployment_id}", json={"paused": False})
    assert _ids(await _claim(client)) == [run_id]


async def test_concurrent_claimers_get_disjoint_runs(client: httpx.AsyncClient) -> None:
    deployment_id = await _setup(client)
    made = {await _run(client, deployment_id) for _ in range(200)}

    async def claimer(name: str) -> list[str]:
        mine: list[str] = []
        while True:
            got = _ids(await _claim(client, worker=name, limit=7))
            if not got:
                return mine
            mine += got

    results = await asyncio.gather(*(claimer(f"w{i}") for i in range(4)))
    everything = [run for result in results for run in result]
    assert len(everything) == len(set(everything))  # nobody got a run twice
    assert set(everything) == made
    workers = (await client.post("/work_pools/local/workers/filter", json={})).json()
    assert len(workers) == 4


async def test_long_poll_returns_when_a_run_is_made(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Woken by the run's creation, not by the periodic re-check.
    monkeypatch.setattr(claims, "RECHECK_SECONDS", 30.0)
    deployment_id = await _setup(client)
    started = time.monotonic()
    claim = asyncio.create_task(_claim(client, wait_seconds=10))
    await asyncio.sleep(0.3)
    assert not claim.done()
    run_id = await _run(client, deployment_id)
    result = await asyncio.wait_for(claim, 5)
    assert _ids(result) == [run_id]
    assert time.monotonic() - started < 4  # woken: neither the 10 s wait nor the 30 s re-check


async def test_long_poll_wakes_when_a_scheduled_run_falls_due(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(claims, "RECHECK_SECONDS", 30.0)
    deployment_id = await _setup(client)
    run_id = await _run(client, deployment_id, in_seconds=1.5)
    started = time.monotonic()
    result = await _claim(client, wait_seconds=10)
    assert _ids(result) == [run_id]
    assert 1.0 < time.monotonic() - started < 3


async def test_long_poll_gives_up_after_wait_seconds(client: httpx.AsyncClient) -> None:
    await _setup(client)
    started = time.monotonic()
    assert (await _claim(client, wait_seconds=0.5))["runs"] == []
    assert 0.4 < time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"worker_name": ""}, "worker_name"),
        ({"worker_name": "w", "limit": 0}, "limit"),
        ({"worker_name": "w", "limit": 101}, "limit"),
        ({"worker_name": "w", "wait_seconds": 31}, "wait_seconds"),
    ],
)
async def test_bad_claims_name_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    await _setup(client)
    response = await client.post("/work_pools/local/claim", json=body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


async def test_flow_run_heartbeat(client: httpx.AsyncClient) -> None:
    deployment_id = await _setup(client)
    run_id = await _run(client, deployment_id)
    assert (await client.post(f"/flow_runs/{run_id}/heartbeat")).status_code == 204
    missing = "00000000-0000-0000-0000-000000000000"
    assert (await client.post(f"/flow_runs/{missing}/heartbeat")).status_code == 404
