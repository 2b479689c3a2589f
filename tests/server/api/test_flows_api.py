"""Health and flows: the contract of /api/health and /api/flows, on every backend."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio


async def test_health_reports_the_database_dialect(client: httpx.AsyncClient, dialect: str) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": dialect}


async def test_create_flow_returns_the_existing_flow_for_the_same_name(
    client: httpx.AsyncClient,
) -> None:
    first = await client.post("/flows/", json={"name": "etl", "tags": ["nightly"]})
    assert first.status_code == 200
    body = first.json()
    assert body["name"] == "etl"
    assert body["tags"] == ["nightly"]
    uuid.UUID(body["id"])

    again = await client.post("/flows/", json={"name": "etl", "tags": ["other"]})
    assert again.status_code == 200
    assert again.json() == body  # the stored flow, unchanged

    read = await client.get(f"/flows/{body['id']}")
    assert read.status_code == 200
    assert read.json() == body


async def test_list_flows_sorted_by_name_and_paged(client: httpx.AsyncClient) -> None:
    for name in ["c", "a", "d", "b"]:
        assert (await client.post("/flows/", json={"name": name})).status_code == 200
    names = [f["name"] for f in (await client.get("/flows/")).json()]
    assert names == ["a", "b", "c", "d"]
    page = await client.get("/flows/", params={"limit": 2, "offset": 1})
    assert [f["name"] for f in page.json()] == ["b", "c"]
    assert (await client.get("/flows/", params={"offset": 4})).json() == []


async def test_list_flows_refuses_bad_pages(client: httpx.AsyncClient) -> None:
    for params, field in [
        ({"limit": 201}, "limit"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
    ]:
        response = await client.get("/flows/", params=params)
        assert response.status_code == 422, params
        assert f"query.{field}" in response.json()["detail"]


async def test_flow_run_creates_its_flow_on_first_use(
    client: httpx.AsyncClient, make_run: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    run = await make_run(flow_name="made-by-a-run")
    flow = (await client.get(f"/flows/{run['flow_id']}")).json()
    assert flow["name"] == "made-by-a-run"
    second = await make_run(flow_name="made-by-a-run")
    assert second["flow_id"] == run["flow_id"]


async def test_delete_flow_deletes_its_runs(
    client: httpx.AsyncClient,
    make_run: Callable[..., Awaitable[dict[str, Any]]],
    row_counts: Callable[[], Awaitable[dict[str, int]]],
) -> None:
    doomed = await make_run(flow_name="doomed")
    kept = await make_run(flow_name="kept")

    response = await client.delete(f"/flows/{doomed['flow_id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"/flows/{doomed['flow_id']}")).status_code == 404
    assert (await client.get(f"/flow_runs/{doomed['id']}")).status_code == 404
    assert (await client.get(f"/flow_runs/{kept['id']}")).status_code == 200
    counts = await row_counts()
    assert counts["flows"] == 1
    assert counts["flow_runs"] == 1
    assert counts["flow_run_states"] == 1  # only the kept run's Pending


async def test_unknown_flow_is_404_naming_it(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    for response in [
        await client.get(f"/flows/{missing}"),
        await client.delete(f"/flows/{missing}"),
    ]:
        assert response.status_code == 404
        assert str(missing) in response.json()["detail"]


async def test_malformed_flow_id_is_422_naming_the_parameter(client: httpx.AsyncClient) -> None:
    response = await client.get("/flows/not-a-uuid")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "path.flow_id"
