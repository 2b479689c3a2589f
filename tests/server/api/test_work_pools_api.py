"""Work pools, work queues and workers over the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from conveyor.schemas.deployments import WORKER_OFFLINE_AFTER_SECONDS
from conveyor.schemas.work_pools import default_job_template
from conveyor.server.database import orm
from conveyor.server.database.engine import Database

RowCounts = Callable[[], Awaitable[dict[str, int]]]

pytestmark = pytest.mark.anyio


async def _pool(
    client: httpx.AsyncClient, name: str = "local", **fields: object
) -> dict[str, object]:
    response = await client.post("/work_pools/", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    pool: dict[str, object] = response.json()
    return pool


async def test_create_read_update_delete_a_pool(client: httpx.AsyncClient) -> None:
    pool = await _pool(client, "local", description="laptop")
    assert pool["type"] == "process"
    assert pool["paused"] is False
    assert pool["concurrency_limit"] is None
    assert pool["base_job_template"] == default_job_template("process").model_dump(mode="json")
    assert (await client.get("/work_pools/local")).json() == pool

    changed = await client.patch("/work_pools/local", json={"paused": True, "concurrency_limit": 3})
    assert changed.status_code == 200
    assert (changed.json()["paused"], changed.json()["concurrency_limit"]) == (True, 3)
    assert changed.json()["description"] == "laptop"  # not sent: unchanged
    cleared = await client.patch("/work_pools/local", json={"concurrency_limit": None})
    assert cleared.json()["concurrency_limit"] is None
    assert cleared.json()["paused"] is True

    assert (await client.delete("/work_pools/local")).status_code == 204
    missing = await client.get("/work_pools/local")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "No work pool named 'local'."
    assert (await client.delete("/work_pools/local")).status_code == 404


async def test_a_docker_pool_gets_the_docker_template(client: httpx.AsyncClient) -> None:
    pool = await _pool(client, "containers", type="docker")
    variables = pool["base_job_template"]["variables"]  # type: ignore[index]
    assert variables["properties"]["image"]["default"] == "python:3.12-slim"


async def test_duplicate_pool_name_is_409_and_writes_nothing(
    client: httpx.AsyncClient, row_counts: RowCounts
) -> None:
    await _pool(client, "local")
    before = await row_counts()
    response = await client.post("/work_pools/", json={"name": "local", "type": "docker"})
    assert response.status_code == 409
    assert response.json()["detail"] == "name: a work pool named 'local' exists already."
    assert await row_counts() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "has space"}, "name"),
        ({"name": "p", "type": "lambda"}, "type"),
        ({"name": "p", "concurrency_limit": -1}, "concurrency_limit"),
        (
            {
                "name": "p",
                "base_job_template": {
                    "job_configuration": {"cmd": "{{ command }}"},
                    "variables": {"type": "object", "properties": {}},
                },
            },
            "base_job_template",
        ),
        (
            {
                "name": "p",
                "base_job_template": {
                    "job_configuration": {},
                    "variables": {
                        "type": "object",
                        "properties": {"n": {"type": "integer", "default": "x"}},
                    },
                },
            },
            "base_job_template",
        ),
    ],
)
async def test_bad_pools_are_422_naming_the_field(
    client: httpx.AsyncClient, row_counts: RowCounts, body: dict[str, object], field: str
) -> None:
    before = await row_counts()
    response = await client.post("/work_pools/", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(f"Invalid request: {field}")
    assert await row_counts() == before


async def test_a_custom_template_is_stored_and_placeholders_checked(
    client: httpx.AsyncClient,
) -> None:
    template = {
        "job_configuration": {"command": "{{ command }}"},
        "variables": {"type": "object", "properties": {"command": {"type": "string"}}},
    }
    pool = await _pool(client, "custom", base_job_template=template)
    assert pool["base_job_template"] == template
    reset = await client.patch("/work_pools/custom", json={"base_job_template": None})
    assert reset.json()["base_job_template"] == default_job_template("process").model_dump(
        mode="json"
    )


async def test_filter_pools_by_type_sorted_by_name(client: httpx.AsyncClient) -> None:
    for name, type_ in (("b", "process"), ("a", "process"), ("c", "docker")):
        await _pool(client, name, type=type_)
    names = [p["name"] for p in (await client.post("/work_pools/filter", json={})).json()]
    assert names == ["a", "b", "c"]
    only = await client.post("/work_pools/filter", json={"type": ["process"], "limit": 1})
    assert [p["name"] for p in only.json()] == ["a"]
    too_many = await client.post("/work_pools/filter", json={"limit": 201})
    assert too_many.status_code == 422


async def test_a_pool_has_a_default_queue_that_cannot_be_deleted(
    client: httpx.AsyncClient,
) -> None:
    await _pool(client)
    queues = (await client.post("/work_pools/local/queues/filter", json={})).json()
    assert [(q["name"], q["priority"], q["work_pool_name"]) for q in queues] == [
        ("default", 1, "local")
    ]
    response = await client.delete("/work_pools/local/queues/default")
    assert response.status_code == 409
    assert "default" in response.json()["detail"]


async def test_queues_crud_and_priority(client: httpx.AsyncClient) -> None:
    await _pool(client)
    high = await client.post("/work_pools/local/queues/", json={"name": "high", "priority": 1})
    assert high.status_code == 201
    low = await client.post("/work_pools/local/queues/", json={"name": "low"})
    assert low.json()["priority"] == 2  # after every queue the pool has
    names = [
        q["name"] for q in (await client.post("/work_pools/local/queues/filter", json={})).json()
    ]
    assert names == ["default", "high", "low"]  # priority, then name

    changed = await client.patch(
        "/work_pools/local/queues/low", json={"priority": 7, "paused": True, "concurrency_limit": 2}
    )
    assert (changed.json()["priority"], changed.json()["paused"]) == (7, True)
    assert (await client.get("/work_pools/local/queues/low")).json() == changed.json()

    duplicate = await client.post("/work_pools/local/queues/", json={"name": "low"})
    assert duplicate.status_code == 409
    assert duplicate.json()["detail"].startswith("name:")
    bad = await client.post("/work_pools/local/queues/", json={"name": "x", "priority": 0})
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("Invalid request: priority")

    assert (await client.delete("/work_pools/local/queues/low")).status_code == 204
    gone = await client.get("/work_pools/local/queues/low")
    assert gone.status_code == 404
    assert gone.json()["detail"] == "Work pool 'local' has no queue named 'low'."


async def test_queue_routes_name_an_unknown_pool(client: httpx.AsyncClient) -> None:
    for response in (
        await client.post("/work_pools/nope/queues/", json={"name": "q"}),
        await client.post("/work_pools/nope/queues/filter", json={}),
        await client.get("/work_pools/nope/queues/default"),
        await client.post("/work_pools/nope/workers/heartbeat", json={"name": "w"}),
        await client.post("/work_pools/nope/workers/filter", json={}),
    ):
        assert response.status_code == 404
        assert response.json()["detail"] == "No work pool named 'nope'."


async def test_deleting_a_pool_deletes_its_queues_and_workers(
    client: httpx.AsyncClient, row_counts: RowCounts
) -> None:
    before = await row_counts()
    await _pool(client)
    await client.post("/work_pools/local/queues/", json={"name": "extra"})
    await client.post("/work_pools/local/workers/heartbeat", json={"name": "w1"})
    assert (await client.delete("/work_pools/local")).status_code == 204
    assert await row_counts() == before


async def test_worker_heartbeats_register_and_refresh_a_worker(
    client: httpx.AsyncClient, database: Database
) -> None:
    await _pool(client)
    first = await client.post("/work_pools/local/workers/heartbeat", json={"name": "w1"})
    assert first.status_code == 200
    assert first.json()["online"] is True
    second = await client.post("/work_pools/local/workers/heartbeat", json={"name": "w1"})
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["last_heartbeat"] >= first.json()["last_heartbeat"]
    await client.post("/work_pools/local/workers/heartbeat", json={"name": "w2"})

    # w2 falls silent for longer than the threshold.
    silent = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
        seconds=WORKER_OFFLINE_AFTER_SECONDS + 5
    )

    def age(session: Session) -> None:
        session.execute(
            update(orm.Worker).where(orm.Worker.name == "w2").values(last_heartbeat=silent)
        )

    await database.write(age)
    workers = (await client.post("/work_pools/local/workers/filter", json={})).json()
    assert [(w["name"], w["online"]) for w in workers] == [("w1", True), ("w2", False)]
    online = await client.post("/work_pools/local/workers/filter", json={"online": True})
    assert [w["name"] for w in online.json()] == ["w1"]
    offline = await client.post("/work_pools/local/workers/filter", json={"online": False})
    assert [w["name"] for w in offline.json()] == ["w2"]
