"""Variables: the contract of /api/variables, on every backend."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from conveyor.server.database import orm
from conveyor.server.database.engine import Database

pytestmark = pytest.mark.anyio


async def test_set_then_get_returns_the_value_and_tags(client: httpx.AsyncClient) -> None:
    response = await client.put("/variables/region", json={"value": "eu", "tags": ["infra"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "region"
    assert body["value"] == "eu"
    assert body["tags"] == ["infra"]
    assert body["created"] == body["updated"]

    read = await client.get("/variables/region")
    assert read.status_code == 200
    assert read.json() == body


async def test_set_again_replaces_value_and_tags_and_keeps_the_row(
    client: httpx.AsyncClient,
) -> None:
    first = (await client.put("/variables/limit", json={"value": 1, "tags": ["a"]})).json()
    second = await client.put("/variables/limit", json={"value": {"n": 2}})
    assert second.status_code == 200
    body = second.json()
    assert body["id"] == first["id"]
    assert body["created"] == first["created"]
    assert body["updated"] >= first["updated"]
    assert body["value"] == {"n": 2}
    assert body["tags"] == []
    assert (await client.get("/variables/limit")).json() == body


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -17,
        2.5,
        "",
        "text with ünïcode",
        "null",
        [],
        [1, "two", None, [3.5, {"four": 4}]],
        {},
        {"nested": {"list": [1, {"deep": None}], "flag": False}, "n": 0.125},
    ],
)
async def test_values_round_trip_exactly(client: httpx.AsyncClient, value: Any) -> None:
    response = await client.put("/variables/v", json={"value": value})
    assert response.status_code == 200, response.text
    assert response.json()["value"] == value
    read = (await client.get("/variables/v")).json()["value"]
    assert read == value
    assert type(read) is type(value)


async def test_value_is_required(client: httpx.AsyncClient) -> None:
    response = await client.put("/variables/v", json={"tags": []})
    assert response.status_code == 422
    assert "value" in response.json()["detail"]


async def test_list_sorted_by_name_and_paged(client: httpx.AsyncClient) -> None:
    for name in ["c", "a", "d", "b"]:
        assert (await client.put(f"/variables/{name}", json={"value": name})).status_code == 200
    listed = (await client.get("/variables/")).json()
    assert [v["name"] for v in listed] == ["a", "b", "c", "d"]
    assert [v["value"] for v in listed] == ["a", "b", "c", "d"]
    page = await client.get("/variables/", params={"limit": 2, "offset": 1})
    assert [v["name"] for v in page.json()] == ["b", "c"]
    assert (await client.get("/variables/", params={"offset": 4})).json() == []


async def test_list_refuses_bad_pages(client: httpx.AsyncClient) -> None:
    for params, field in [
        ({"limit": 201}, "limit"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
    ]:
        response = await client.get("/variables/", params=params)
        assert response.status_code == 422, params
        assert f"query.{field}" in response.json()["detail"]


async def test_delete_removes_the_variable(client: httpx.AsyncClient) -> None:
    await client.put("/variables/doomed", json={"value": 1})
    await client.put("/variables/kept", json={"value": 2})
    response = await client.delete("/variables/doomed")
    assert response.status_code == 204
    assert (await client.get("/variables/doomed")).status_code == 404
    assert [v["name"] for v in (await client.get("/variables/")).json()] == ["kept"]
    again = await client.delete("/variables/doomed")
    assert again.status_code == 404
    assert again.json()["detail"] == "No variable named 'doomed'."


async def test_missing_variable_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/variables/nope")
    assert response.status_code == 404
    assert response.json()["detail"] == "No variable named 'nope'."


@pytest.mark.parametrize(
    "name", ["has space", "per%25cent", "colon:in", "é", "a" * 256, "semi;colon"]
)
async def test_bad_names_are_refused_naming_the_name(
    client: httpx.AsyncClient, database: Database, name: str
) -> None:
    for method in ("GET", "PUT", "DELETE"):
        body = {"value": 1} if method == "PUT" else None
        response = await client.request(method, f"/variables/{name}", json=body)
        assert response.status_code == 422, (method, name, response.text)
        assert "path.name" in response.json()["detail"]
    assert await _count(database) == 0


async def test_names_may_use_letters_digits_dot_dash_underscore(
    client: httpx.AsyncClient,
) -> None:
    name = "Aa0_.-" + "x" * 249
    assert len(name) == 255
    response = await client.put(f"/variables/{name}", json={"value": 1})
    assert response.status_code == 200, response.text
    assert (await client.get(f"/variables/{name}")).json()["name"] == name


async def test_concurrent_sets_of_one_name_leave_one_row(
    client: httpx.AsyncClient, database: Database
) -> None:
    responses = await asyncio.gather(
        *(client.put("/variables/shared", json={"value": i}) for i in range(20))
    )
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await _count(database) == 1
    final = (await client.get("/variables/shared")).json()["value"]
    assert final in range(20)


async def _count(database: Database) -> int:
    def count(session: Session) -> int:
        return int(session.execute(select(func.count()).select_from(orm.Variable)).scalar_one())

    return await database.read(count)
