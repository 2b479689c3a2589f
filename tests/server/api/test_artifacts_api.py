"""Artifacts: the contract of /api/artifacts, on every backend."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio

MakeRun = Callable[..., Awaitable[dict[str, Any]]]


@pytest.mark.parametrize(
    ("type_", "data", "stored"),
    [
        ("markdown", "# Report\n\n*all* good", "# Report\n\n*all* good"),
        ("table", [{"a": 1, "b": "x"}, {"a": 2, "b": None}], None),
        ("table", {"columns": ["a", "b"], "rows": [[1, "x"], [2, None]]}, None),
        ("table", [], None),
        ("link", {"url": "https://example.com", "text": "Example"}, None),
        ("link", {"url": "https://example.com"}, {"url": "https://example.com", "text": None}),
        ("progress", 0, None),
        ("progress", 42.5, None),
        ("progress", 100, None),
    ],
)
async def test_create_each_type_round_trips(
    client: httpx.AsyncClient, type_: str, data: Any, stored: Any
) -> None:
    body = {"type": type_, "data": data, "description": "about it"}
    response = await client.post("/artifacts/", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["type"] == type_
    assert created["data"] == (data if stored is None else stored)
    assert created["description"] == "about it"
    assert created["key"] is None
    assert created["flow_run_id"] is None and created["task_run_id"] is None
    read = await client.get(f"/artifacts/{created['id']}")
    assert read.status_code == 200
    assert read.json() == created


@pytest.mark.parametrize(
    ("type_", "data"),
    [
        ("markdown", 42),
        ("markdown", ["a"]),
        ("markdown", None),
        ("table", "a,b"),
        ("table", [1, 2]),
        ("table", {"columns": ["a"]}),
        ("table", {"columns": ["a", "b"], "rows": [[1]]}),
        ("table", {"columns": [1], "rows": []}),
        ("link", "https://example.com"),
        ("link", {"text": "no url"}),
        ("link", {"url": "", "text": None}),
        ("link", {"url": "https://x", "text": 3}),
        ("link", {"url": "https://x", "extra": 1}),
        ("progress", -1),
        ("progress", 100.5),
        ("progress", "50"),
        ("progress", True),
        ("progress", None),
    ],
)
async def test_bad_data_for_the_type_is_422_naming_data(
    client: httpx.AsyncClient, type_: str, data: Any
) -> None:
    response = await client.post("/artifacts/", json={"type": type_, "data": data})
    assert response.status_code == 422, response.text
    assert "data" in response.json()["detail"]


async def test_unknown_type_and_bad_keys_are_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/artifacts/", json={"type": "image", "data": "x"})
    assert response.status_code == 422
    assert "type" in response.json()["detail"]
    for key in ("Upper", "with space", "under_score", "", "a" * 256):
        bad = await client.post("/artifacts/", json={"type": "markdown", "data": "", "key": key})
        assert bad.status_code == 422, key
        assert "key" in bad.json()["detail"]


async def test_keyed_artifacts_keep_a_history_and_latest_is_the_newest(
    client: httpx.AsyncClient,
) -> None:
    ids = []
    for n in range(3):
        body = {"type": "progress", "data": n * 10, "key": "load-progress"}
        response = await client.post("/artifacts/", json=body)
        assert response.status_code == 201
        ids.append(response.json()["id"])
    await client.post("/artifacts/", json={"type": "markdown", "data": "x", "key": "other"})

    latest = await client.get("/artifacts/latest/load-progress")
    assert latest.status_code == 200
    assert latest.json()["id"] == ids[-1]
    assert latest.json()["data"] == 20

    history = await client.post("/artifacts/filter", json={"key": "load-progress"})
    assert [a["id"] for a in history.json()] == ids[::-1]

    assert (await client.get("/artifacts/latest/missing-key")).status_code == 404
    assert (await client.get("/artifacts/latest/Bad_Key")).status_code == 422


async def test_filter_by_run_and_type_newest_first_and_paged(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    run = await make_run()
    task_run_id = str(uuid.uuid4())
    made = []
    for n in range(5):
        body: dict[str, Any] = {"type": "markdown", "data": f"#{n}", "flow_run_id": run["id"]}
        if n % 2:
            body["task_run_id"] = task_run_id
        made.append((await client.post("/artifacts/", json=body)).json()["id"])
    await client.post("/artifacts/", json={"type": "progress", "data": 1, "flow_run_id": run["id"]})
    await client.post("/artifacts/", json={"type": "markdown", "data": "elsewhere"})

    by_run = (await client.post("/artifacts/filter", json={"flow_run_id": run["id"]})).json()
    assert len(by_run) == 6
    by_type = await client.post(
        "/artifacts/filter", json={"flow_run_id": run["id"], "type": ["markdown"]}
    )
    assert [a["id"] for a in by_type.json()] == made[::-1]
    by_task = await client.post("/artifacts/filter", json={"task_run_id": task_run_id})
    assert [a["id"] for a in by_task.json()] == [made[3], made[1]]

    page = await client.post(
        "/artifacts/filter",
        json={"flow_run_id": run["id"], "type": ["markdown"], "limit": 2, "offset": 1},
    )
    assert [a["id"] for a in page.json()] == [made[3], made[2]]
    everything = (await client.post("/artifacts/filter", json={})).json()
    assert len(everything) == 7

    for bad in ({"limit": 0}, {"limit": 201}, {"offset": -1}, {"type": ["image"]}):
        assert (await client.post("/artifacts/filter", json=bad)).status_code == 422, bad


async def test_unknown_flow_run_is_422_naming_flow_run_id(client: httpx.AsyncClient) -> None:
    body = {"type": "markdown", "data": "x", "flow_run_id": str(uuid.uuid4())}
    response = await client.post("/artifacts/", json=body)
    assert response.status_code == 422
    assert "flow_run_id" in response.json()["detail"]
    assert (await client.post("/artifacts/filter", json={})).json() == []


async def test_deleting_the_flow_run_deletes_its_artifacts(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    run = await make_run()
    mine = await client.post(
        "/artifacts/", json={"type": "markdown", "data": "x", "flow_run_id": run["id"]}
    )
    other = await client.post("/artifacts/", json={"type": "markdown", "data": "y"})
    assert (await client.delete(f"/flow_runs/{run['id']}")).status_code == 204
    assert (await client.get(f"/artifacts/{mine.json()['id']}")).status_code == 404
    assert (await client.get(f"/artifacts/{other.json()['id']}")).status_code == 200


async def test_delete_and_missing_artifacts(client: httpx.AsyncClient) -> None:
    created = (await client.post("/artifacts/", json={"type": "progress", "data": 5})).json()
    assert (await client.delete(f"/artifacts/{created['id']}")).status_code == 204
    assert (await client.get(f"/artifacts/{created['id']}")).status_code == 404
    assert (await client.delete(f"/artifacts/{created['id']}")).status_code == 404
