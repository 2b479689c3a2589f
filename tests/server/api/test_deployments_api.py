"""Deployments and runs of them over the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.schemas.states import State, StateDetails, StateType
from conveyor.server.database import orm
from conveyor.server.database.engine import Database
from conveyor.server.models import flow_runs

pytestmark = pytest.mark.anyio

RowCounts = Callable[[], Awaitable[dict[str, int]]]
UTC = datetime.timezone.utc

SCHEMA = {
    "type": "object",
    "properties": {"n": {"type": "integer"}, "city": {"type": "string", "default": "Oslo"}},
    "required": ["n"],
    "additionalProperties": False,
}
HOURLY = {"schedule": {"kind": "cron", "cron": "0 * * * *"}}


async def _pool(client: httpx.AsyncClient, name: str = "local", **fields: Any) -> None:
    response = await client.post("/work_pools/", json={"name": name, **fields})
    assert response.status_code == 201, response.text


def _body(**fields: Any) -> dict[str, Any]:
    return {
        "flow_name": "etl",
        "name": "daily",
        "entrypoint": "flows.py:etl",
        "parameters": {"n": 1},
        "parameter_schema": SCHEMA,
        "work_pool_name": "local",
        **fields,
    }


async def _deploy(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/deployments/", json=_body(**fields))
    assert response.status_code == 201, response.text
    deployment: dict[str, Any] = response.json()
    return deployment


async def test_deploy_read_by_id_and_name(client: httpx.AsyncClient) -> None:
    await _pool(client)
    deployment = await _deploy(
        client,
        source={"kind": "git", "url": "https://example.com/repo.git", "ref": "main"},
        job_variables={"env": {"A": "1"}},
        schedules=[HOURLY, {**HOURLY, "active": False, "parameters": {"n": 2}}],
        tags=["nightly"],
        version="1.0",
        description="the daily load",
        concurrency_limit=1,
        collision_strategy="CANCEL_NEW",
    )
    assert deployment["flow_name"] == "etl"
    assert (deployment["work_pool_name"], deployment["work_queue_name"]) == ("local", None)
    assert deployment["source"] == {
        "kind": "git",
        "url": "https://example.com/repo.git",
        "ref": "main",
        "subdirectory": None,
    }
    assert [(s["active"], s["parameters"]) for s in deployment["schedules"]] == [
        (True, {}),
        (False, {"n": 2}),
    ]
    assert deployment["schedules"][0]["schedule"]["cron"] == "0 * * * *"
    assert deployment["collision_strategy"] == "CANCEL_NEW"
    by_id = await client.get(f"/deployments/{deployment['id']}")
    assert by_id.json() == deployment
    by_name = await client.get("/deployments/name/etl/daily")
    assert by_name.json() == deployment
    flows = (await client.get("/flows/")).json()
    assert [f["name"] for f in flows] == ["etl"]


async def test_a_deployment_without_a_pool_is_served(client: httpx.AsyncClient) -> None:
    deployment = await _deploy(client, work_pool_name=None)
    assert deployment["work_pool_id"] is None
    run = await client.post(f"/deployments/{deployment['id']}/create_flow_run", json={})
    assert run.status_code == 201
    assert run.json()["work_queue_id"] is None


async def test_redeploy_keeps_the_id_and_replaces_the_fields(client: httpx.AsyncClient) -> None:
    await _pool(client)
    first = await _deploy(client, schedules=[HOURLY], tags=["a"])
    again = await client.post("/deployments/", json=_body(tags=["b"], description="new"))
    assert again.status_code == 200
    second = again.json()
    assert second["id"] == first["id"]
    assert second["created"] == first["created"]
    assert (second["tags"], second["description"], second["schedules"]) == (["b"], "new", [])


async def test_unknown_pool_and_queue_are_422_naming_them(
    client: httpx.AsyncClient, row_counts: RowCounts
) -> None:
    before = await row_counts()
    response = await client.post("/deployments/", json=_body(work_pool_name="x"))
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "work_pool_name: no work pool named 'x'; create it with `conveyor work-pool create x`."
    )
    await _pool(client)
    before = await row_counts()
    response = await client.post("/deployments/", json=_body(work_queue_name="fast"))
    assert response.status_code == 422
    assert response.json()["detail"].startswith(
        "work_queue_name: work pool 'local' has no queue named 'fast'"
    )
    assert await row_counts() == before


async def test_a_named_queue_is_used(client: httpx.AsyncClient) -> None:
    await _pool(client)
    queue = (await client.post("/work_pools/local/queues/", json={"name": "fast"})).json()
    deployment = await _deploy(client, work_queue_name="fast")
    assert (deployment["work_queue_id"], deployment["work_queue_name"]) == (queue["id"], "fast")
    run = await client.post(f"/deployments/{deployment['id']}/create_flow_run", json={})
    assert run.json()["work_queue_id"] == queue["id"]

    # Deleting the queue moves the deployment and its runs to the pool's default queue.
    default = (await client.get("/work_pools/local/queues/default")).json()
    assert (await client.delete("/work_pools/local/queues/fast")).status_code == 204
    moved = (await client.get(f"/deployments/{deployment['id']}")).json()
    assert (moved["work_queue_id"], moved["work_queue_name"]) == (None, None)
    assert (await client.get(f"/flow_runs/{run.json()['id']}")).json()["work_queue_id"] == (
        default["id"]
    )


async def test_deleting_a_flow_deletes_its_deployments(
    client: httpx.AsyncClient, row_counts: RowCounts
) -> None:
    await _pool(client)
    before = await row_counts()
    deployment = await _deploy(client, schedules=[HOURLY])
    await client.post(f"/deployments/{deployment['id']}/create_flow_run", json={})
    assert (await client.delete(f"/flows/{deployment['flow_id']}")).status_code == 204
    assert (await client.get(f"/deployments/{deployment['id']}")).status_code == 404
    assert await row_counts() == before


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"job_variables": {"cpu": 2}}, "job_variables.cpu: is not a variable"),
        ({"job_variables": {"env": {"A": 1}}}, "job_variables.env.A: 1 is not of type 'string'"),
        ({"parameters": {"n": "one"}}, "parameters.n: 'one' is not of type 'integer'"),
        ({"parameters": {}}, "parameters.n: is required"),
        (
            {"schedules": [{**HOURLY, "parameters": {"n": "x"}}]},
            "schedules[0].parameters.n: 'x' is not of type 'integer'",
        ),
        ({"job_variables": {"env": {}}, "work_pool_name": None}, "job_variables: a deployment"),
    ],
)
async def test_bad_values_at_deploy_are_422_naming_the_field_and_write_nothing(
    client: httpx.AsyncClient, row_counts: RowCounts, fields: dict[str, Any], detail: str
) -> None:
    await _pool(client)
    before = await row_counts()
    response = await client.post("/deployments/", json=_body(**fields))
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(detail)
    assert await row_counts() == before


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"parameter_schema": {"type": 3}}, "parameter_schema"),
        ({"name": "a/b"}, "name"),
        ({"schedules": [{"schedule": {"kind": "cron", "cron": "nope"}}]}, "schedules.0.schedule"),
        ({"collision_strategy": "SKIP"}, "collision_strategy"),
        ({"source": {"kind": "local", "path": "relative"}}, "source.local.path"),
    ],
)
async def test_bad_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, fields: dict[str, Any], field: str
) -> None:
    response = await client.post("/deployments/", json=_body(**fields))
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(f"Invalid request: {field}")


async def test_filter_by_flow_pool_paused_and_tags(client: httpx.AsyncClient) -> None:
    await _pool(client)
    await _pool(client, "other")
    await _deploy(client, name="b", tags=["x", "y"])
    await _deploy(client, name="a", flow_name="load", work_pool_name="other", paused=True)
    await _deploy(client, name="c", tags=["x"])

    async def names(**flt: Any) -> list[str]:
        response = await client.post("/deployments/filter", json=flt)
        assert response.status_code == 200, response.text
        return [f"{d['flow_name']}/{d['name']}" for d in response.json()]

    assert await names() == ["load/a", "etl/b", "etl/c"]
    assert await names(flow_name=["etl"]) == ["etl/b", "etl/c"]
    assert await names(work_pool_name=["other"]) == ["load/a"]
    assert await names(paused=True) == ["load/a"]
    assert await names(paused=False, tags_all=["x"]) == ["etl/b", "etl/c"]
    assert await names(tags_all=["x", "y"]) == ["etl/b"]
    assert await names(limit=1, offset=1) == ["etl/b"]
    assert (await client.post("/deployments/filter", json={"limit": 500})).status_code == 422


async def test_patch_pauses_and_validates_like_deploy(
    client: httpx.AsyncClient, row_counts: RowCounts
) -> None:
    await _pool(client)
    deployment = await _deploy(client, description="keep")
    url = f"/deployments/{deployment['id']}"
    paused = await client.patch(url, json={"paused": True})
    assert paused.status_code == 200
    assert (paused.json()["paused"], paused.json()["description"]) == (True, "keep")
    resumed = await client.patch(url, json={"paused": False, "tags": ["t"], "concurrency_limit": 2})
    assert (resumed.json()["paused"], resumed.json()["tags"]) == (False, ["t"])
    before = await row_counts()
    bad = await client.patch(url, json={"parameters": {"n": "x"}, "description": "changed"})
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("parameters.n:")
    bad = await client.patch(url, json={"job_variables": {"nope": 1}})
    assert bad.json()["detail"].startswith("job_variables.nope:")
    assert await row_counts() == before
    assert (await client.get(url)).json()["description"] == "keep"
    missing = await client.patch(f"/deployments/{uuid.uuid4()}", json={"paused": True})
    assert missing.status_code == 404


async def test_delete_a_deployment_keeps_its_runs(client: httpx.AsyncClient) -> None:
    await _pool(client)
    deployment = await _deploy(client)
    run = (await client.post(f"/deployments/{deployment['id']}/create_flow_run", json={})).json()
    assert (await client.delete(f"/deployments/{deployment['id']}")).status_code == 204
    assert (await client.get(f"/deployments/{deployment['id']}")).status_code == 404
    kept = (await client.get(f"/flow_runs/{run['id']}")).json()
    assert kept["deployment_id"] is None
    assert (await client.delete(f"/deployments/{deployment['id']}")).status_code == 404


async def test_a_pool_in_use_cannot_be_deleted(client: httpx.AsyncClient) -> None:
    await _pool(client)
    deployment = await _deploy(client)
    response = await client.delete("/work_pools/local")
    assert response.status_code == 409
    assert "etl/daily" in response.json()["detail"]
    await client.delete(f"/deployments/{deployment['id']}")
    assert (await client.delete("/work_pools/local")).status_code == 204


async def test_create_flow_run_merges_parameters_tags_and_queue(
    client: httpx.AsyncClient,
) -> None:
    await _pool(client)
    deployment = await _deploy(
        client, tags=["nightly"], job_variables={"env": {"A": "1"}}, parameters={"n": 1}
    )
    default_queue = (await client.get("/work_pools/local/queues/default")).json()
    when = datetime.datetime(2030, 1, 1, tzinfo=UTC)
    response = await client.post(
        f"/deployments/{deployment['id']}/create_flow_run",
        json={
            "parameters": {"city": "Rome"},
            "job_variables": {"env": {"B": "2"}},
            "tags": ["manual", "nightly"],
            "scheduled_time": when.isoformat(),
        },
    )
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["flow_name"] == "etl"
    assert run["flow_id"] == deployment["flow_id"]
    assert run["deployment_id"] == deployment["id"]
    assert run["parameters"] == {"n": 1, "city": "Rome"}
    assert run["tags"] == ["nightly", "manual"]
    assert run["job_variables"] == {"env": {"B": "2"}}
    assert run["work_queue_id"] == default_queue["id"]
    assert (run["state_type"], run["state_name"]) == ("SCHEDULED", "Scheduled")
    assert datetime.datetime.fromisoformat(run["expected_start_time"]) == when
    assert run["name"].startswith("daily-")
    assert run["auto_scheduled"] is False
    states = (await client.get(f"/flow_runs/{run['id']}/states")).json()
    assert [s["type"] for s in states] == ["SCHEDULED"]
    assert states[0]["details"]["scheduled_time"].startswith("2030-01-01T00:00:00")


async def test_create_flow_run_is_due_now_by_default(client: httpx.AsyncClient) -> None:
    await _pool(client)
    deployment = await _deploy(client)
    before = datetime.datetime.now(UTC)
    run = (await client.post(f"/deployments/{deployment['id']}/create_flow_run", json={})).json()
    expected = datetime.datetime.fromisoformat(run["expected_start_time"])
    assert before <= expected <= datetime.datetime.now(UTC)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"parameters": {"n": "x"}}, "parameters.n: 'x' is not of type 'integer'"),
        ({"parameters": {"extra": 1}}, "parameters: Additional properties"),
        ({"job_variables": {"env": {"A": 1}}}, "job_variables.env.A:"),
        ({"job_variables": {"gpu": True}}, "job_variables.gpu: is not a variable"),
        ({"parent_flow_run_id": str(uuid.uuid4())}, "parent_flow_run_id: no flow run"),
    ],
)
async def test_bad_runs_are_422_naming_the_field_and_create_nothing(
    client: httpx.AsyncClient, row_counts: RowCounts, body: dict[str, Any], detail: str
) -> None:
    await _pool(client)
    deployment = await _deploy(client)
    before = await row_counts()
    response = await client.post(f"/deployments/{deployment['id']}/create_flow_run", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(detail)
    assert await row_counts() == before


async def test_create_flow_run_of_an_unknown_deployment_is_404(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    response = await client.post(f"/deployments/{missing}/create_flow_run", json={})
    assert response.status_code == 404
    assert response.json()["detail"] == f"No deployment with id {missing}."


async def test_an_idempotency_key_makes_one_run(
    client: httpx.AsyncClient, row_counts: RowCounts
) -> None:
    await _pool(client)
    deployment = await _deploy(client)
    url = f"/deployments/{deployment['id']}/create_flow_run"
    first = await client.post(url, json={"idempotency_key": "k1"})
    assert first.status_code == 201
    counts = await row_counts()
    again = await client.post(url, json={"idempotency_key": "k1", "parameters": {"n": 5}})
    assert again.status_code == 200
    assert again.json() == first.json()
    assert await row_counts() == counts
    other = await client.post(url, json={"idempotency_key": "k2"})
    assert other.status_code == 201
    assert other.json()["id"] != first.json()["id"]
    # The key is per deployment.
    second = await _deploy(client, name="hourly")
    elsewhere = await client.post(
        f"/deployments/{second['id']}/create_flow_run", json={"idempotency_key": "k1"}
    )
    assert elsewhere.status_code == 201


# -- future auto-scheduled runs ---------------------------------------------------------
async def _runs(database: Database, deployment_id: str) -> dict[str, str]:
    """Runs of the deployment by name: the scheduler's (auto), past and future, a manual
    one, and one already running."""
    now = datetime.datetime.now(UTC)
    made = {
        "future-auto": (now + datetime.timedelta(hours=1), True, StateType.SCHEDULED),
        "later-auto": (now + datetime.timedelta(days=1), True, StateType.SCHEDULED),
        "late-auto": (now - datetime.timedelta(hours=1), True, StateType.SCHEDULED),
        "future-manual": (now + datetime.timedelta(hours=1), False, StateType.SCHEDULED),
        "running-auto": (now + datetime.timedelta(hours=2), True, StateType.RUNNING),
    }

    def insert(session: Session) -> dict[str, str]:
        deployment = session.get(orm.Deployment, uuid.UUID(deployment_id))
        assert deployment is not None
        ids = {}
        for name, (when, auto, state_type) in made.items():
            state = State(type=state_type, state_details=StateDetails(scheduled_time=when))
            run_id = uuid.uuid4()
            values = {
                "id": run_id,
                "flow_id": deployment.flow_id,
                "name": name,
                "deployment_id": deployment.id,
                "auto_scheduled": auto,
                "idempotency_key": f"scheduled:{when.isoformat()}" if auto else None,
                "expected_start_time": when,
            }
            assert flow_runs.insert_flow_run(session, values, state) is not None
            ids[name] = str(run_id)
        return ids

    return await database.write(insert)


async def _names_left(database: Database) -> set[str]:
    def read(session: Session) -> set[str]:
        return set(session.execute(select(orm.FlowRun.name)).scalars())

    return await database.read(read)


KEPT = {"late-auto", "future-manual", "running-auto"}


@pytest.mark.parametrize(
    "change",
    [
        {"paused": True},
        {"schedules": [{"schedule": {"kind": "interval", "interval": 600}}]},
        {"schedules": [{**HOURLY, "active": False}]},
        {"parameters": {"n": 2}},
    ],
)
async def test_a_change_deletes_only_future_scheduled_auto_runs(
    client: httpx.AsyncClient, database: Database, change: dict[str, Any]
) -> None:
    await _pool(client)
    deployment = await _deploy(client, schedules=[HOURLY])
    await _runs(database, deployment["id"])
    response = await client.patch(f"/deployments/{deployment['id']}", json=change)
    assert response.status_code == 200, response.text
    assert await _names_left(database) == KEPT


@pytest.mark.parametrize(
    "change",
    [
        {"description": "new words"},
        {"schedules": [HOURLY]},  # the same set
        {"paused": False},
        {"tags": ["t"]},
    ],
)
async def test_other_changes_keep_the_future_runs(
    client: httpx.AsyncClient, database: Database, change: dict[str, Any]
) -> None:
    await _pool(client)
    deployment = await _deploy(client, schedules=[HOURLY])
    before = await client.get(f"/deployments/{deployment['id']}")
    await _runs(database, deployment["id"])
    response = await client.patch(f"/deployments/{deployment['id']}", json=change)
    assert response.status_code == 200, response.text
    assert await _names_left(database) == KEPT | {"future-auto", "later-auto"}
    if "schedules" in change:  # unchanged: the same rows, the same ids
        assert response.json()["schedules"] == before.json()["schedules"]


async def test_redeploy_with_new_schedules_deletes_future_auto_runs(
    client: httpx.AsyncClient, database: Database
) -> None:
    await _pool(client)
    deployment = await _deploy(client, schedules=[HOURLY])
    await _runs(database, deployment["id"])
    same = await client.post("/deployments/", json=_body(schedules=[HOURLY]))
    assert same.status_code == 200
    assert await _names_left(database) == KEPT | {"future-auto", "later-auto"}
    changed = await client.post("/deployments/", json=_body(schedules=[]))
    assert changed.status_code == 200
    assert await _names_left(database) == KEPT


async def test_deleting_a_deployment_deletes_its_future_auto_runs(
    client: httpx.AsyncClient, database: Database
) -> None:
    await _pool(client)
    deployment = await _deploy(client, schedules=[HOURLY])
    await _runs(database, deployment["id"])
    assert (await client.delete(f"/deployments/{deployment['id']}")).status_code == 204
    assert await _names_left(database) == KEPT


async def test_the_scheduler_key_is_unique_per_deployment(
    client: httpx.AsyncClient, database: Database
) -> None:
    await _pool(client)
    deployment = await _deploy(client)
    ids = await _runs(database, deployment["id"])
    run = (await client.get(f"/flow_runs/{ids['future-auto']}")).json()

    def again(session: Session) -> orm.FlowRun | None:
        values = {
            "id": uuid.uuid4(),
            "flow_id": uuid.UUID(run["flow_id"]),
            "name": "duplicate",
            "deployment_id": uuid.UUID(deployment["id"]),
            "auto_scheduled": True,
            "idempotency_key": run["idempotency_key"],
        }
        return flow_runs.insert_flow_run(session, values, State(type=StateType.SCHEDULED))

    assert await database.write(again) is None
    assert "duplicate" not in await _names_left(database)
