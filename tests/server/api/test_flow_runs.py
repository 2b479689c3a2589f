"""Flow runs: create (idempotent), read, filter, sort, page, delete, state history."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio

MakeRun = Callable[..., Awaitable[dict[str, Any]]]
RowCounts = Callable[[], Awaitable[dict[str, int]]]


def _at(offset_seconds: float) -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (now + datetime.timedelta(seconds=offset_seconds)).isoformat()


async def _ids(client: httpx.AsyncClient, **flt: Any) -> list[str]:
    response = await client.post("/flow_runs/filter", json=flt)
    assert response.status_code == 200, response.text
    return [run["id"] for run in response.json()]


async def test_create_with_a_client_chosen_id_is_idempotent(
    client: httpx.AsyncClient, row_counts: RowCounts
) -> None:
    run_id = str(uuid.uuid4())
    body = {
        "id": run_id,
        "flow_name": "etl",
        "name": "brave-otter",
        "flow_version": "1.2",
        "parameters": {"day": "2024-05-01", "n": 3},
        "tags": ["nightly"],
        "retries": 2,
        "retry_delay_seconds": 1.5,
    }
    first = await client.post("/flow_runs/", json=body)
    assert first.status_code == 201
    created = first.json()
    assert created["id"] == run_id
    assert created["flow_name"] == "etl"
    assert created["parameters"] == {"day": "2024-05-01", "n": 3}
    assert created["tags"] == ["nightly"]
    assert (created["retries"], created["retry_delay_seconds"]) == (2, 1.5)
    assert (created["state_type"], created["state_name"]) == ("PENDING", "Pending")
    assert created["run_count"] == 0
    counts = await row_counts()

    again = await client.post("/flow_runs/", json=body)
    assert again.status_code == 200
    assert again.json() == created
    # Even a different body with the same id returns the stored run untouched.
    different = await client.post("/flow_runs/", json={**body, "name": "other", "tags": []})
    assert different.status_code == 200
    assert different.json() == created
    assert await row_counts() == counts
    assert (await client.get(f"/flow_runs/{run_id}")).json() == created


async def test_create_without_an_id_makes_a_new_run_each_time(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    first, second = await make_run(), await make_run()
    assert first["id"] != second["id"]
    assert first["flow_id"] == second["flow_id"]


async def test_create_in_a_given_state(client: httpx.AsyncClient, make_run: MakeRun) -> None:
    when = _at(3600)
    run = await make_run(
        state={"type": "SCHEDULED", "name": "Scheduled", "state_details": {"scheduled_time": when}}
    )
    assert run["state_type"] == "SCHEDULED"
    assert datetime.datetime.fromisoformat(run["expected_start_time"]) == (
        datetime.datetime.fromisoformat(when)
    )
    states = (await client.get(f"/flow_runs/{run['id']}/states")).json()
    assert [s["type"] for s in states] == ["SCHEDULED"]


async def test_read_returns_timezone_aware_times(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    run = await make_run()
    read = (await client.get(f"/flow_runs/{run['id']}")).json()
    assert read == run
    created = datetime.datetime.fromisoformat(read["created"])
    assert created.utcoffset() == datetime.timedelta(0)
    assert abs(datetime.datetime.now(datetime.timezone.utc) - created) < datetime.timedelta(
        minutes=5
    )


async def test_state_history_is_in_order_and_moves_the_run(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    run = await make_run()
    for state in ({"type": "RUNNING"}, {"type": "COMPLETED", "message": "done"}):
        response = await client.post(f"/flow_runs/{run['id']}/set_state", json={"state": state})
        assert response.json()["status"] == "ACCEPT"
    states = (await client.get(f"/flow_runs/{run['id']}/states")).json()
    assert [(s["type"], s["name"]) for s in states] == [
        ("PENDING", "Pending"),
        ("RUNNING", "Running"),
        ("COMPLETED", "Completed"),
    ]
    assert states[-1]["message"] == "done"
    assert len({s["id"] for s in states}) == 3
    stamps = [datetime.datetime.fromisoformat(s["timestamp"]) for s in states]
    assert stamps == sorted(stamps)

    read = (await client.get(f"/flow_runs/{run['id']}")).json()
    assert (read["state_type"], read["state_name"], read["run_count"]) == (
        "COMPLETED",
        "Completed",
        1,
    )
    assert read["start_time"] is not None
    assert read["end_time"] is not None
    assert read["start_time"] <= read["end_time"]


async def test_filter_by_state_flow_tags_and_parent(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    parent = await make_run(flow_name="parent", tags=["a", "b"])
    child = await make_run(flow_name="child", tags=["a"], parent_flow_run_id=parent["id"])
    late = await make_run(
        flow_name="child",
        tags=["b"],
        state={"type": "SCHEDULED", "name": "Late", "state_details": {"scheduled_time": _at(-60)}},
    )
    everything = {parent["id"], child["id"], late["id"]}

    assert set(await _ids(client)) == everything
    assert set(await _ids(client, state_type=["PENDING"])) == {parent["id"], child["id"]}
    assert set(await _ids(client, state_type=["SCHEDULED", "PENDING"])) == everything
    assert await _ids(client, state_type=["COMPLETED"]) == []
    assert await _ids(client, state_name=["Late"]) == [late["id"]]
    assert set(await _ids(client, flow_name=["child"])) == {child["id"], late["id"]}
    assert await _ids(client, flow_id=[parent["flow_id"]]) == [parent["id"]]
    assert set(await _ids(client, tags_all=["a"])) == {parent["id"], child["id"]}
    assert await _ids(client, tags_all=["a", "b"]) == [parent["id"]]
    assert await _ids(client, tags_all=["nope"]) == []
    assert await _ids(client, parent_flow_run_id=parent["id"]) == [child["id"]]
    assert await _ids(client, flow_name=["child"], tags_all=["b"]) == [late["id"]]
    named = (await client.post("/flow_runs/filter", json={"flow_name": ["child"]})).json()
    assert {r["flow_name"] for r in named} == {"child"}


async def test_tag_filter_finds_old_matches_among_many_newer_runs(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    old = await make_run(tags=["rare", "x"])
    for n in range(25):
        await make_run(name=f"newer-{n}", tags=["x"] if n % 2 else [])
    assert await _ids(client, tags_all=["rare"], limit=1) == [old["id"]]
    assert await _ids(client, tags_all=["x", "rare", "x"], limit=1) == [old["id"]]
    assert len(await _ids(client, tags_all=["x"], limit=200)) == 13
    assert await _ids(client, tags_all=["rar"]) == []  # whole tags, not substrings


async def test_filter_by_creation_time(client: httpx.AsyncClient, make_run: MakeRun) -> None:
    runs = [await make_run(name=f"run-{n}") for n in range(3)]
    middle = runs[1]["created"]
    assert set(await _ids(client, created_after=middle)) == {runs[1]["id"], runs[2]["id"]}
    assert await _ids(client, created_before=middle) == [runs[0]["id"]]
    assert await _ids(client, created_after=middle, created_before=runs[2]["created"]) == [
        runs[1]["id"]
    ]
    assert await _ids(client, created_after=_at(3600)) == []


async def test_sort_orders(client: httpx.AsyncClient, make_run: MakeRun) -> None:
    runs = [
        await make_run(
            name=name,
            state={"type": "SCHEDULED", "state_details": {"scheduled_time": _at(offset)}},
        )
        for name, offset in [("b", 30), ("c", 10), ("a", 20)]
    ]
    b, c, a = (r["id"] for r in runs)
    assert await _ids(client) == [a, c, b]  # newest first by default
    assert await _ids(client, sort="CREATED_DESC") == [a, c, b]
    assert await _ids(client, sort="CREATED_ASC") == [b, c, a]
    assert await _ids(client, sort="NAME_ASC") == [a, b, c]
    assert await _ids(client, sort="EXPECTED_START_TIME_DESC") == [b, a, c]


async def test_pagination_with_limit_and_offset(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    created = [(await make_run(name=f"run-{n:02d}"))["id"] for n in range(7)]
    pages = [
        await _ids(client, sort="CREATED_ASC", limit=3, offset=offset) for offset in (0, 3, 6, 9)
    ]
    assert pages == [created[0:3], created[3:6], created[6:7], []]
    tagged = [(await make_run(tags=["t"]))["id"] for _ in range(3)]
    assert await _ids(client, tags_all=["t"], sort="CREATED_ASC", limit=2, offset=1) == tagged[1:]


BAD_FILTERS: list[tuple[dict[str, Any], str]] = [
    ({"limit": 201}, "limit"),
    ({"limit": 5000}, "limit"),
    ({"limit": 0}, "limit"),
    ({"offset": -1}, "offset"),
    ({"sort": "SIDEWAYS"}, "sort"),
    ({"state_type": ["DONE"]}, "state_type.0"),
    ({"created_after": "yesterday"}, "created_after"),
    ({"created_after": "2024-01-01T00:00:00"}, "created_after"),  # naive: ambiguous
    ({"parent_flow_run_id": "nope"}, "parent_flow_run_id"),
    ({"flow_name": "etl"}, "flow_name"),
    ({"colour": "red"}, "colour"),
]


async def test_bad_filters_are_422_naming_the_field(client: httpx.AsyncClient) -> None:
    problems = []
    for flt, field in BAD_FILTERS:
        response = await client.post("/flow_runs/filter", json=flt)
        body = response.json()
        if response.status_code != 422 or field not in [e["field"] for e in body["errors"]]:
            problems.append(f"{flt}: {response.status_code} {body}")
        elif field not in body["detail"]:
            problems.append(f"{flt}: detail does not name {field}: {body['detail']}")
    assert not problems, "\n".join(problems)


async def test_delete_removes_the_run_with_its_states_task_runs_and_logs(
    client: httpx.AsyncClient, make_run: MakeRun, row_counts: RowCounts
) -> None:
    doomed = await make_run()
    child = await make_run(parent_flow_run_id=doomed["id"])
    kept = await make_run()
    now = _at(0)

    def records(flow_run_id: str) -> dict[str, Any]:
        task_run_id = str(uuid.uuid4())
        return {
            "task_runs": [
                {
                    "id": task_run_id,
                    "flow_run_id": flow_run_id,
                    "name": "extract-0",
                    "task_key": "etl.extract",
                    "dynamic_key": "0",
                    "created": now,
                }
            ],
            "task_run_states": [
                {"task_run_id": task_run_id, "seq": 1, "state": {"type": "RUNNING"}},
                {"task_run_id": task_run_id, "seq": 2, "state": {"type": "COMPLETED"}},
            ],
            "logs": [
                {"name": "l", "level": 20, "message": "hi", "timestamp": now, **ids}
                for ids in (
                    {"flow_run_id": flow_run_id},
                    {"flow_run_id": flow_run_id, "task_run_id": task_run_id},
                )
            ],
        }

    for run in (doomed, kept):
        assert (await client.post("/records", json=records(run["id"]))).status_code == 200
    await client.post(f"/flow_runs/{doomed['id']}/set_state", json={"state": {"type": "RUNNING"}})
    before = await row_counts()

    response = await client.delete(f"/flow_runs/{doomed['id']}")
    assert response.status_code == 204
    assert (await client.get(f"/flow_runs/{doomed['id']}")).status_code == 404
    assert (await client.get(f"/flow_runs/{doomed['id']}/states")).status_code == 404
    assert (
        await client.post("/task_runs/filter", json={"flow_run_id": [doomed["id"]]})
    ).json() == []
    assert (await client.post("/logs/filter", json={"flow_run_id": doomed["id"]})).json() == []
    after = await row_counts()
    assert after == {
        **before,
        "flows": before["flows"],
        "flow_runs": before["flow_runs"] - 1,
        "flow_run_states": before["flow_run_states"] - 2,
        "task_runs": before["task_runs"] - 1,
        "task_run_states": before["task_run_states"] - 2,
        "logs": before["logs"] - 2,
    }
    # A child keeps existing, detached from its deleted parent.
    assert (await client.get(f"/flow_runs/{child['id']}")).json()["parent_flow_run_id"] is None
    assert (await client.get(f"/flow_runs/{kept['id']}")).status_code == 200
    assert (await client.delete(f"/flow_runs/{doomed['id']}")).status_code == 404


async def test_unknown_flow_run_is_404_everywhere(client: httpx.AsyncClient) -> None:
    missing = str(uuid.uuid4())
    responses = [
        await client.get(f"/flow_runs/{missing}"),
        await client.get(f"/flow_runs/{missing}/states"),
        await client.delete(f"/flow_runs/{missing}"),
        await client.post(f"/flow_runs/{missing}/set_state", json={"state": {"type": "RUNNING"}}),
    ]
    for response in responses:
        assert response.status_code == 404
        assert missing in response.json()["detail"]
