"""Task runs, their states and logs as the engine records them: POST /api/records.

Batches are idempotent (the same batch twice records nothing new) and ordered by each
state's ``seq`` (a late or shuffled batch never moves a task run's current state back).
"""

from __future__ import annotations

import datetime
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from conveyor.server.database import orm
from conveyor.server.database.engine import Database

pytestmark = pytest.mark.anyio

MakeRun = Callable[..., Awaitable[dict[str, Any]]]
RowCounts = Callable[[], Awaitable[dict[str, int]]]


def _now(offset_seconds: float = 0.0) -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (now + datetime.timedelta(seconds=offset_seconds)).isoformat()


def task_run(flow_run_id: str | None, task: str = "extract", **fields: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "flow_run_id": flow_run_id,
        "name": f"{task}-0",
        "task_key": f"etl.{task}",
        "dynamic_key": "0",
        "created": _now(),
        **fields,
    }


def state(task_run_id: str, seq: int, type_: str, **fields: Any) -> dict[str, Any]:
    return {"task_run_id": task_run_id, "seq": seq, "state": {"type": type_, **fields}}


def log(message: str, level: int = 20, **ids: str) -> dict[str, Any]:
    # The client names each line, which is what makes a repeated batch harmless.
    return {
        "id": str(uuid.uuid4()),
        "name": "conveyor.task_runs",
        "level": level,
        "message": message,
        "timestamp": _now(),
        **ids,
    }


async def _record(client: httpx.AsyncClient, **batch: Any) -> dict[str, int]:
    response = await client.post("/records", json=batch)
    assert response.status_code == 200, response.text
    result: dict[str, int] = response.json()
    return result


async def _task_run(client: httpx.AsyncClient, task_run_id: str) -> dict[str, Any]:
    response = await client.get(f"/task_runs/{task_run_id}")
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


async def _history(client: httpx.AsyncClient, task_run_id: str) -> list[tuple[int, str, str]]:
    response = await client.get(f"/task_runs/{task_run_id}/states")
    assert response.status_code == 200, response.text
    return [(s["seq"], s["type"], s["name"]) for s in response.json()]


async def test_a_batch_records_task_runs_states_and_logs(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    flow_run = await make_run()
    upstream = task_run(flow_run["id"], "extract")
    mapped = task_run(
        flow_run["id"],
        "transform",
        name="transform-3",
        map_index=3,
        dynamic_key="3",
        tags=["heavy"],
        task_version="2",
        cache_key="abc",
        task_inputs=[{"task_run_id": upstream["id"], "parameter": "orders"}],
    )
    result = await _record(
        client,
        task_runs=[upstream, mapped],
        task_run_states=[
            state(mapped["id"], 1, "PENDING"),
            state(mapped["id"], 2, "RUNNING"),
            state(mapped["id"], 3, "COMPLETED", message="ok"),
        ],
        logs=[log("working", flow_run_id=flow_run["id"], task_run_id=mapped["id"])],
    )
    assert result == {"flow_runs": 0, "task_runs": 2, "task_run_states": 3, "logs": 1}

    read = await _task_run(client, mapped["id"])
    assert {k: read[k] for k in ("id", "flow_run_id", "name", "task_key", "dynamic_key")} == {
        k: mapped[k] for k in ("id", "flow_run_id", "name", "task_key", "dynamic_key")
    }
    assert (read["map_index"], read["tags"], read["task_version"], read["cache_key"]) == (
        3,
        ["heavy"],
        "2",
        "abc",
    )
    assert read["task_inputs"] == [{"task_run_id": upstream["id"], "parameter": "orders"}]
    assert (read["state_type"], read["state_name"], read["run_count"]) == (
        "COMPLETED",
        "Completed",
        1,
    )
    assert read["start_time"] is not None
    assert read["end_time"] is not None
    assert await _history(client, mapped["id"]) == [
        (1, "PENDING", "Pending"),
        (2, "RUNNING", "Running"),
        (3, "COMPLETED", "Completed"),
    ]
    untouched = await _task_run(client, upstream["id"])
    assert (untouched["state_type"], untouched["run_count"]) == (None, 0)


async def test_the_same_batch_twice_records_nothing_new(
    client: httpx.AsyncClient, make_run: MakeRun, row_counts: RowCounts
) -> None:
    flow_run = await make_run()
    run = task_run(flow_run["id"])
    batch = {
        "task_runs": [run],
        "task_run_states": [state(run["id"], 1, "RUNNING"), state(run["id"], 2, "COMPLETED")],
        "logs": [log(f"line {n}", flow_run_id=flow_run["id"]) for n in range(3)],
    }
    assert await _record(client, **batch) == {
        "flow_runs": 0,
        "task_runs": 1,
        "task_run_states": 2,
        "logs": 3,
    }
    counts, read = await row_counts(), await _task_run(client, run["id"])

    assert await _record(client, **batch) == {
        "flow_runs": 0,
        "task_runs": 0,
        "task_run_states": 0,
        "logs": 0,
    }
    assert await row_counts() == counts
    assert await _task_run(client, run["id"]) == read  # run_count not counted twice
    assert read["run_count"] == 1


def inline(seq: int, type_: str, **fields: Any) -> dict[str, Any]:
    """A state inside its run's record (``states``), as the engine sends a short task."""
    return {"seq": seq, "type": type_, **fields}


async def test_states_inside_a_run_record_are_recorded_like_states_alone(
    client: httpx.AsyncClient, make_run: MakeRun, row_counts: RowCounts
) -> None:
    flow_run = await make_run()
    run = task_run(flow_run["id"], states=[inline(1, "PENDING"), inline(2, "RUNNING")])
    assert (await _record(client, task_runs=[run]))["task_run_states"] == 2
    counts = await row_counts()
    assert (await _record(client, task_runs=[run]))["task_run_states"] == 0  # a repeat
    assert await row_counts() == counts
    # The run's record again, with a later state inline and another alone: both merge in.
    later = {**run, "states": [inline(2, "RUNNING"), inline(4, "COMPLETED", message="ok")]}
    result = await _record(
        client, task_runs=[later], task_run_states=[state(run["id"], 3, "RUNNING", name="Retrying")]
    )
    assert (result["task_runs"], result["task_run_states"]) == (0, 2)
    read = await _task_run(client, run["id"])
    assert (read["state_type"], read["run_count"], read["end_time"] is not None) == (
        "COMPLETED",
        2,
        True,
    )
    assert await _history(client, run["id"]) == [
        (1, "PENDING", "Pending"),
        (2, "RUNNING", "Running"),
        (3, "RUNNING", "Retrying"),
        (4, "COMPLETED", "Completed"),
    ]


async def test_a_bad_state_inside_a_run_record_is_refused_by_its_place(
    client: httpx.AsyncClient, make_run: MakeRun, row_counts: RowCounts
) -> None:
    flow_run = await make_run()
    counts = await row_counts()
    run = task_run(flow_run["id"], states=[inline(1, "PENDING"), {"type": "RUNNING"}])
    response = await client.post("/records", json={"task_runs": [run]})
    assert response.status_code == 422
    assert "task_runs.0.states.1.seq" in response.text
    assert await row_counts() == counts


async def test_duplicates_inside_one_batch_are_recorded_once(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    flow_run = await make_run()
    run = task_run(flow_run["id"])
    line = log("once", flow_run_id=flow_run["id"])
    result = await _record(
        client,
        task_runs=[run, run],
        task_run_states=[state(run["id"], 1, "RUNNING")] * 2,
        logs=[line, line],
    )
    assert result == {"flow_runs": 0, "task_runs": 1, "task_run_states": 1, "logs": 1}
    assert (await _task_run(client, run["id"]))["run_count"] == 1


async def test_states_applied_out_of_order_never_move_the_current_state_back(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    flow_run = await make_run()
    run = task_run(flow_run["id"])
    await _record(client, task_runs=[run])
    # The final state arrives first (an earlier batch was delayed and is retried later).
    await _record(client, task_run_states=[state(run["id"], 3, "COMPLETED")])
    await _record(
        client,
        task_run_states=[state(run["id"], 2, "RUNNING"), state(run["id"], 1, "PENDING")],
    )
    read = await _task_run(client, run["id"])
    assert (read["state_type"], read["state_name"]) == ("COMPLETED", "Completed")
    assert read["run_count"] == 1
    assert read["start_time"] is not None
    assert await _history(client, run["id"]) == [
        (1, "PENDING", "Pending"),
        (2, "RUNNING", "Running"),
        (3, "COMPLETED", "Completed"),
    ]


async def test_within_a_batch_the_highest_seq_wins_whatever_the_order(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    flow_run = await make_run()
    run = task_run(flow_run["id"])
    states = [
        state(run["id"], 1, "PENDING"),
        state(run["id"], 2, "RUNNING"),
        state(run["id"], 3, "SCHEDULED", name="AwaitingRetry"),
        state(run["id"], 4, "RUNNING", name="Retrying"),
        state(run["id"], 5, "FAILED", message="gave up"),
    ]
    random.Random(7).shuffle(states)
    assert (await _record(client, task_runs=[run], task_run_states=states))["task_run_states"] == 5
    read = await _task_run(client, run["id"])
    assert (read["state_type"], read["state_name"], read["run_count"]) == ("FAILED", "Failed", 2)
    assert [name for _, _, name in await _history(client, run["id"])] == [
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "Failed",
    ]


async def test_states_of_unknown_task_runs_are_skipped(
    client: httpx.AsyncClient, make_run: MakeRun, row_counts: RowCounts
) -> None:
    flow_run = await make_run()
    known = task_run(flow_run["id"])
    stranger = str(uuid.uuid4())
    result = await _record(
        client,
        task_runs=[known],
        task_run_states=[state(stranger, 1, "RUNNING"), state(known["id"], 1, "RUNNING")],
    )
    assert result == {"flow_runs": 0, "task_runs": 1, "task_run_states": 1, "logs": 0}
    assert (await row_counts())["task_run_states"] == 1
    assert (await client.get(f"/task_runs/{stranger}")).status_code == 404


async def test_records_of_unknown_flow_runs_are_skipped(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    """E.g. the run was deleted while its engine was still reporting: a batch that can
    never be accepted must not be refused, or the engine would retry it forever."""
    flow_run = await make_run()
    gone = str(uuid.uuid4())
    orphan, known, standalone = task_run(gone), task_run(flow_run["id"]), task_run(None)
    result = await _record(
        client,
        task_runs=[orphan, known, standalone],
        task_run_states=[state(orphan["id"], 1, "RUNNING"), state(standalone["id"], 1, "RUNNING")],
        logs=[log("lost", flow_run_id=gone), log("kept", flow_run_id=flow_run["id"]), log("free")],
    )
    assert result == {"flow_runs": 0, "task_runs": 2, "task_run_states": 1, "logs": 2}
    assert (await client.get(f"/task_runs/{orphan['id']}")).status_code == 404
    assert (await _task_run(client, standalone["id"]))["flow_run_id"] is None


async def test_filter_task_runs(client: httpx.AsyncClient, make_run: MakeRun) -> None:
    first, second = await make_run(), await make_run()
    names = ("extract", "transform", "load")
    runs = [task_run(first["id"], name, created=_now(n)) for n, name in enumerate(names)]
    other = task_run(second["id"], "extract", created=_now(3))
    await _record(
        client,
        task_runs=[*runs, other],
        task_run_states=[state(runs[0]["id"], 1, "COMPLETED"), state(other["id"], 1, "FAILED")],
    )

    async def ids(**flt: Any) -> list[str]:
        response = await client.post("/task_runs/filter", json=flt)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()]

    assert set(await ids(flow_run_id=[first["id"]])) == {r["id"] for r in runs}
    assert await ids(state_type=["COMPLETED"]) == [runs[0]["id"]]
    assert await ids(state_type=["FAILED"], flow_run_id=[first["id"]]) == []
    assert set(await ids(name_like="extract")) == {runs[0]["id"], other["id"]}
    assert await ids(name_like="ransf") == [runs[1]["id"]]
    # Case-insensitive and literal on both backends: no wildcards, no escapes.
    assert await ids(name_like="LOAD") == [runs[2]["id"]]
    assert await ids(name_like="%") == []
    assert await ids(name_like="_") == []
    assert await ids(name_like="\\") == []
    newest_first = await ids()
    assert newest_first == [r["id"] for r in reversed([*runs, other])]
    assert await ids(limit=2, offset=1) == newest_first[1:3]
    assert await ids(created_after=runs[2]["created"]) == [other["id"], runs[2]["id"]]
    assert await ids(created_before=runs[1]["created"]) == [runs[0]["id"]]
    response = await client.post("/task_runs/filter", json={"limit": 201})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "limit"


async def test_unknown_task_run_is_404(client: httpx.AsyncClient) -> None:
    missing = str(uuid.uuid4())
    for path in (f"/task_runs/{missing}", f"/task_runs/{missing}/states"):
        response = await client.get(path)
        assert response.status_code == 404
        assert missing in response.json()["detail"]


async def test_logs_page_forward_with_after_id_and_filter_by_level(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    flow_run, other = await make_run(), await make_run()
    run = task_run(flow_run["id"])
    levels = [10, 20, 30, 40, 50, 20, 20]
    await _record(
        client,
        task_runs=[run],
        logs=[
            log(f"line {n}", level, flow_run_id=flow_run["id"], task_run_id=run["id"])
            for n, level in enumerate(levels)
        ]
        + [log("elsewhere", flow_run_id=other["id"])],
    )

    async def page(**flt: Any) -> list[dict[str, Any]]:
        response = await client.post("/logs/filter", json=flt)
        assert response.status_code == 200, response.text
        lines: list[dict[str, Any]] = response.json()
        return lines

    lines = await page(flow_run_id=flow_run["id"])
    assert [line["message"] for line in lines] == [f"line {n}" for n in range(7)]
    ids = [line["id"] for line in lines]
    assert ids == sorted(ids)
    assert lines[0]["task_run_id"] == run["id"]

    # A follower pages with the last id it saw, and sees only what is new.
    seen: list[str] = []
    after: int | None = None
    while batch := await page(flow_run_id=flow_run["id"], after_id=after, limit=3):
        seen += [line["message"] for line in batch]
        after = batch[-1]["id"]
    assert seen == [f"line {n}" for n in range(7)]
    await _record(client, logs=[log("late line", flow_run_id=flow_run["id"])])
    assert [line["message"] for line in await page(flow_run_id=flow_run["id"], after_id=after)] == [
        "late line"
    ]

    warnings = await page(flow_run_id=flow_run["id"], level_ge=30)
    assert [line["level"] for line in warnings] == [30, 40, 50]
    assert len(await page(task_run_id=run["id"])) == 7
    assert [line["message"] for line in await page(flow_run_id=other["id"])] == ["elsewhere"]
    assert len(await page()) == 9


async def test_bad_log_filters_are_422_naming_the_field(client: httpx.AsyncClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"after_id": -1}, "after_id"),
        ({"after_id": 2**64}, "after_id"),
        ({"level_ge": "loud"}, "level_ge"),
        ({"flow_run_id": "x"}, "flow_run_id"),
    ]
    for flt, field in cases:
        response = await client.post("/logs/filter", json=flt)
        assert response.status_code == 422, (flt, response.text)
        assert response.json()["errors"][0]["field"] == field, flt


async def test_the_api_docs_describe_the_batch_body(client: httpx.AsyncClient) -> None:
    # The route reads raw bytes (for speed); its body must still be documented.
    schema = (await client.get("/openapi.json")).json()
    body = schema["paths"]["/api/records"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/RecordBatch"}
    components = schema["components"]["schemas"]
    assert set(components["RecordBatch"]["properties"]) == {
        "flow_runs",
        "task_runs",
        "task_run_states",
        "logs",
    }
    assert "TaskRunIn" in components and "StateIn" in components


def flow_run(**fields: Any) -> dict[str, Any]:
    """A flow run as its engine records it: started by itself, in state Running."""
    return {
        "id": str(uuid.uuid4()),
        "flow_name": "etl",
        "name": "quick-run",
        "state": {"type": "RUNNING", "name": "Running", "timestamp": _now()},
        **fields,
    }


async def test_flow_runs_in_a_batch_are_created_before_their_records(
    client: httpx.AsyncClient,
) -> None:
    parent = flow_run()
    child = flow_run(name="child-run", parent_flow_run_id=parent["id"])
    task = task_run(child["id"])
    batch = {
        "flow_runs": [parent, child],
        "task_runs": [task],
        "task_run_states": [state(task["id"], 1, "COMPLETED")],
        "logs": [log("child says hi", flow_run_id=child["id"])],
    }
    expected = {"flow_runs": 2, "task_runs": 1, "task_run_states": 1, "logs": 1}
    assert await _record(client, **batch) == expected
    # Recorded as sent, once: the same batch again creates nothing.
    assert await _record(client, **batch) == dict.fromkeys(expected, 0)
    response = await client.get(f"/flow_runs/{child['id']}")
    assert response.status_code == 200, response.text
    run = response.json()
    assert (run["state_type"], run["run_count"], run["parent_flow_run_id"]) == (
        "RUNNING",
        1,
        parent["id"],
    )
    assert run["start_time"] is not None
    assert (await _task_run(client, task["id"]))["flow_run_id"] == child["id"]


async def test_a_flow_run_whose_parent_is_gone_is_skipped_with_its_records(
    client: httpx.AsyncClient, row_counts: RowCounts
) -> None:
    orphan = flow_run(parent_flow_run_id=str(uuid.uuid4()))
    task = task_run(orphan["id"])
    before = await row_counts()
    result = await _record(
        client,
        flow_runs=[orphan],
        task_runs=[task],
        logs=[log("lost", flow_run_id=orphan["id"])],
    )
    assert result == {"flow_runs": 0, "task_runs": 0, "task_run_states": 0, "logs": 0}
    assert await row_counts() == before


async def test_a_proposal_records_what_it_carries_first_in_one_transaction(
    client: httpx.AsyncClient,
) -> None:
    run = flow_run()
    records = {"flow_runs": [run], "logs": [log("Finished", flow_run_id=run["id"])]}
    completed = {"type": "COMPLETED", "name": "Completed", "timestamp": _now(1)}
    body = {"state": completed, "records": records}
    response = await client.post(f"/flow_runs/{run['id']}/set_state", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ACCEPT"
    history = (await client.get(f"/flow_runs/{run['id']}/states")).json()
    assert [s["name"] for s in history] == ["Running", "Completed"]
    logs = (await client.post("/logs/filter", json={"flow_run_id": run["id"]})).json()
    assert [line["message"] for line in logs] == ["Finished"]


async def test_a_proposal_with_a_bad_record_is_refused_whole(
    client: httpx.AsyncClient, row_counts: RowCounts
) -> None:
    run = flow_run()
    bad = {**log("x", flow_run_id=run["id"]), "level": "loud"}
    body = {
        "state": {"type": "COMPLETED", "name": "Completed"},
        "records": {"flow_runs": [run], "logs": [bad]},
    }
    before = await row_counts()
    response = await client.post(f"/flow_runs/{run['id']}/set_state", json=body)
    assert response.status_code == 422, response.text
    assert "records.logs.0.level" in response.json()["detail"]
    assert await row_counts() == before


async def test_times_in_any_iso_form_are_stored_as_the_same_instants(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    """The engine's own form stays a string all the way to the database; any other form
    (another offset, no fraction, a day past the 28th) is parsed. Both kinds compare and
    store as the instants they are."""
    flow_run = await make_run()
    run = task_run(flow_run["id"], created="2026-01-30T10:00:00+02:00")
    states = [
        state(run["id"], 1, "PENDING", timestamp="2026-01-30T08:00:00.000001Z"),
        # 08:00:00.5 UTC, written as local time in UTC+2 without the engine's form.
        state(run["id"], 2, "RUNNING", timestamp="2026-01-30T10:00:00.500000+02:00"),
        state(run["id"], 3, "FAILED", timestamp="2026-01-30T08:00:01Z"),
        state(run["id"], 4, "RUNNING", timestamp="2026-01-28T08:00:00.250000+00:00"),
        state(run["id"], 5, "COMPLETED", timestamp="2026-01-28T08:00:02.000000Z"),
    ]
    await _record(client, task_runs=[run], task_run_states=states)
    read = await _task_run(client, run["id"])
    at = datetime.datetime.fromisoformat
    assert at(read["created"]) == at("2026-01-30T08:00:00+00:00")
    # Earliest Running and latest end, by instant (not by how they were written).
    assert at(read["start_time"]) == at("2026-01-28T08:00:00.250000+00:00")
    assert at(read["end_time"]) == at("2026-01-30T08:00:01+00:00")
    assert at(read["state_timestamp"]) == at("2026-01-28T08:00:02+00:00")
    response = await client.get(f"/task_runs/{run['id']}/states")
    assert [at(s["timestamp"]) for s in response.json()] == [
        at("2026-01-30T08:00:00.000001+00:00"),
        at("2026-01-30T08:00:00.5+00:00"),
        at("2026-01-30T08:00:01+00:00"),
        at("2026-01-28T08:00:00.25+00:00"),
        at("2026-01-28T08:00:02+00:00"),
    ]


async def test_states_merge_into_a_history_stored_by_an_older_version(
    client: httpx.AsyncClient, make_run: MakeRun, database: Database
) -> None:
    flow_run = await make_run()
    run = task_run(flow_run["id"])
    await _record(client, task_runs=[run])

    def store_old_history(session: Session) -> None:
        # Before, entries kept datetime.isoformat(): no fraction when it was zero.
        old = [
            {
                "seq": 1,
                "type": "RUNNING",
                "name": "Running",
                "timestamp": "2026-01-01T09:00:00+00:00",
            }
        ]
        session.execute(
            update(orm.TaskRun).where(orm.TaskRun.id == uuid.UUID(run["id"])).values(states=old)
        )

    await database.write(store_old_history)
    done = state(run["id"], 2, "COMPLETED", timestamp="2026-01-01T09:00:00.500000Z")
    await _record(client, task_run_states=[done])
    read = await _task_run(client, run["id"])
    at = datetime.datetime.fromisoformat
    assert (read["state_type"], read["run_count"]) == ("COMPLETED", 1)
    assert at(read["start_time"]) == at("2026-01-01T09:00:00+00:00")
    assert at(read["end_time"]) == at("2026-01-01T09:00:00.5+00:00")
