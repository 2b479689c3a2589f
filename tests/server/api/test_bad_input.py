"""Bad input: a 4xx that names the field, never a 500, and never a partial write.

Each case runs against a database holding one flow run (with a task run, states and a
log line); after the refused request every table has exactly the rows it had before.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conveyor.server.api.limits import MAX_BODY_BYTES, BodySizeLimit

pytestmark = pytest.mark.anyio

MakeRun = Callable[..., Awaitable[dict[str, Any]]]
RowCounts = Callable[[], Awaitable[dict[str, int]]]

NOW = datetime.datetime.now(datetime.timezone.utc).isoformat()
NAIVE = "2024-05-01T12:00:00"
RUN = "RUN_ID"  # replaced by the seeded flow run's id
TASK = {"id": str(uuid.uuid4()), "name": "t-0", "task_key": "t", "dynamic_key": "0", "created": NOW}


def _task(**fields: Any) -> dict[str, Any]:
    return {**TASK, "id": str(uuid.uuid4()), "flow_run_id": RUN, **fields}


def _log(**fields: Any) -> dict[str, Any]:
    line = {"id": str(uuid.uuid4()), "name": "x", "level": 20, "message": "m", "timestamp": NOW}
    return {**line, "flow_run_id": RUN, **fields}


RUN_BODY = {"flow_name": "etl", "name": "run"}

# (method, path, JSON body or raw bytes, expected status, the field the error must name)
CASES: list[tuple[str, str, Any, int, str]] = [
    # malformed bodies
    ("POST", "/flow_runs/", b'{"flow_name": "etl",', 422, "body"),
    ("POST", "/flow_runs/", b"", 422, "body"),
    ("POST", "/flow_runs/", [RUN_BODY], 422, "body"),
    ("POST", "/records", b"not json at all", 422, "body"),
    # missing fields, wrong types, unknown fields, out of range
    ("POST", "/flow_runs/", {"name": "run"}, 422, "flow_name"),
    ("POST", "/flow_runs/", {**RUN_BODY, "flow_name": ""}, 422, "flow_name"),
    ("POST", "/flow_runs/", {**RUN_BODY, "flow_name": "f" * 256}, 422, "flow_name"),
    ("POST", "/flow_runs/", {**RUN_BODY, "id": "run-1"}, 422, "id"),
    ("POST", "/flow_runs/", {**RUN_BODY, "retries": "many"}, 422, "retries"),
    ("POST", "/flow_runs/", {**RUN_BODY, "retries": -1}, 422, "retries"),
    ("POST", "/flow_runs/", {**RUN_BODY, "retries": 2**40}, 422, "retries"),
    ("POST", "/flow_runs/", {**RUN_BODY, "retry_delay_seconds": 1e300}, 422, "retry_delay_seconds"),
    ("POST", "/flow_runs/", {**RUN_BODY, "tags": "nightly"}, 422, "tags"),
    ("POST", "/flow_runs/", {**RUN_BODY, "parameters": [1, 2]}, 422, "parameters"),
    ("POST", "/flow_runs/", {**RUN_BODY, "colour": "red"}, 422, "colour"),
    ("POST", "/flow_runs/", {**RUN_BODY, "state": {"type": "DONE"}}, 422, "state.type"),
    ("POST", "/flow_runs/", {**RUN_BODY, "state": {"type": "RUNNING", "x": 1}}, 422, "state.x"),
    (
        "POST",
        "/flow_runs/",
        {**RUN_BODY, "state": {"type": "RUNNING", "timestamp": NAIVE}},
        422,
        "state.timestamp",
    ),
    (
        "POST",
        "/flow_runs/",
        {**RUN_BODY, "parent_flow_run_id": str(uuid.uuid4())},
        422,
        "parent_flow_run_id",
    ),
    ("POST", "/flows/", {"name": ""}, 422, "name"),
    ("POST", "/flows/", {"name": "etl", "tags": [1, {}]}, 422, "tags.1"),
    # proposing states
    ("POST", f"/flow_runs/{RUN}/set_state", {}, 422, "state"),
    ("POST", f"/flow_runs/{RUN}/set_state", {"state": {"type": "FINISHED"}}, 422, "state.type"),
    (
        "POST",
        f"/flow_runs/{RUN}/set_state",
        {"state": {"type": "RUNNING"}, "force": "maybe"},
        422,
        "force",
    ),
    (
        "POST",
        f"/flow_runs/{RUN}/set_state",
        {"state": {"type": "SCHEDULED", "state_details": {"scheduled_time": NAIVE}}},
        422,
        "state.state_details.scheduled_time",
    ),
    (
        "POST",
        f"/flow_runs/{RUN}/set_state",
        {"state": {"type": "RUNNING", "state_details": {"transition_id": 7}}},
        422,
        "state.state_details.transition_id",
    ),
    ("POST", f"/flow_runs/{uuid.uuid4()}/set_state", {"state": {"type": "RUNNING"}}, 404, ""),
    ("GET", "/flow_runs/not-a-uuid", None, 422, "path.flow_run_id"),
    ("DELETE", "/flow_runs/not-a-uuid", None, 422, "path.flow_run_id"),
    ("GET", "/task_runs/not-a-uuid", None, 422, "path.task_run_id"),
    # batches: one bad record refuses the whole batch, and the good ones are not written
    (
        "POST",
        "/records",
        {"task_runs": [_task(), _task(created=NAIVE)]},
        422,
        "task_runs.1.created",
    ),
    ("POST", "/records", {"task_runs": [_task(), _task(name="n" * 256)]}, 422, "task_runs.1.name"),
    ("POST", "/records", {"task_runs": [_task(map_index=-1)]}, 422, "task_runs.0.map_index"),
    (
        "POST",
        "/records",
        {"task_runs": [_task()], "task_run_states": [{"task_run_id": TASK["id"], "seq": 2**31}]},
        422,
        "task_run_states.0.seq",
    ),
    ("POST", "/records", {"logs": [_log(), _log(level="loud")]}, 422, "logs.1.level"),
    ("POST", "/records", {"logs": [_log(timestamp=NAIVE)]}, 422, "logs.0.timestamp"),
    ("POST", "/records", {"logs": [_log()], "events": []}, 422, "events"),
    ("POST", "/records", {"task_runs": {"id": 1}}, 422, "task_runs"),
]


def _substitute(value: Any, run_id: str) -> Any:
    if isinstance(value, str):
        return value.replace(RUN, run_id)
    if isinstance(value, dict):
        return {k: _substitute(v, run_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, run_id) for v in value]
    return value


async def _seed(client: httpx.AsyncClient, make_run: MakeRun) -> str:
    """One flow run with a task run, task-run states and a log line; returns its id."""
    run = await make_run()
    task = {**_task(), "flow_run_id": run["id"]}
    batch = {
        "task_runs": [task],
        "task_run_states": [{"task_run_id": task["id"], "seq": 1, "state": {"type": "RUNNING"}}],
        "logs": [_log(flow_run_id=run["id"])],
    }
    assert (await client.post("/records", json=batch)).status_code == 200
    return str(run["id"])


async def _problem(
    client: httpx.AsyncClient, run_id: str, case: tuple[str, str, Any, int, str]
) -> str | None:
    """What is wrong with the answer to one bad request, or None."""
    method, path, body, status, field = case
    path = path.replace(RUN, run_id)
    if isinstance(body, bytes):
        headers = {"content-type": "application/json"}
        response = await client.request(method, path, content=body, headers=headers)
    elif body is None:
        response = await client.request(method, path)
    else:
        response = await client.request(method, path, json=_substitute(body, run_id))
    if response.status_code != status:
        return f"status {response.status_code}, not {status}: {response.text[:300]}"
    payload = response.json()
    detail = payload.get("detail")
    if not isinstance(detail, str) or field not in detail:
        return f"detail does not name {field!r}: {payload}"
    if "errors" in payload and field not in [e["field"] for e in payload["errors"]]:
        return f"errors do not name {field!r}: {payload['errors']}"
    return None


async def test_bad_requests_are_refused_by_name_and_write_nothing(
    client: httpx.AsyncClient, make_run: MakeRun, row_counts: RowCounts
) -> None:
    """Every case in CASES, on one seeded database; all mismatches are reported at once."""
    run_id = await _seed(client, make_run)
    before = await row_counts()
    problems = []
    for case in CASES:
        problem = await _problem(client, run_id, case)
        after = await row_counts()
        if after != before:
            problem = f"{problem or ''} wrote rows: {before} -> {after}"
            before = after
        if problem:
            method, path, _, _, field = case
            problems.append(f"{method} {path} ({field}): {problem}")
    assert not problems, "\n".join(problems)


async def test_unknown_parent_is_refused_in_words(client: httpx.AsyncClient) -> None:
    missing = str(uuid.uuid4())
    response = await client.post("/flow_runs/", json={**RUN_BODY, "parent_flow_run_id": missing})
    assert response.status_code == 422
    assert response.json()["detail"] == f"parent_flow_run_id: no flow run with id {missing}."


async def test_an_oversized_body_is_413_before_it_is_read(
    client: httpx.AsyncClient, row_counts: RowCounts
) -> None:
    before = await row_counts()
    line = _log(flow_run_id=None, message="x" * 1_000_000)
    body = json.dumps({"logs": [line] * (MAX_BODY_BYTES // 1_000_000 + 1)}).encode()
    assert len(body) > MAX_BODY_BYTES
    response = await client.post(
        "/records", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert str(MAX_BODY_BYTES) in response.json()["detail"]
    assert await row_counts() == before


async def test_a_streamed_body_over_the_limit_is_413(app: FastAPI, row_counts: RowCounts) -> None:
    """Without a Content-Length the limit is enforced while the body streams in."""
    before = await row_counts()
    limited = BodySizeLimit(app, max_bytes=4096)
    line = _log(flow_run_id=None, message="x" * 1000)
    chunks = [json.dumps({"logs": [line] * 8}).encode()]
    assert len(chunks[0]) > 4096

    async def stream() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    transport = httpx.ASGITransport(app=limited)
    async with httpx.AsyncClient(transport=transport, base_url="http://conveyor.test/api") as c:
        headers = {"content-type": "application/json"}
        response = await c.post("/records", content=stream(), headers=headers)
        assert response.status_code == 413
        assert "4096" in response.json()["detail"]
        # Under the limit the same wrapped app works.
        small = json.dumps({"logs": [line]}).encode()
        ok = await c.post("/records", content=small, headers=headers)
        assert ok.status_code == 200
        assert ok.json()["logs"] == 1
    after = await row_counts()
    assert after == {**before, "logs": before["logs"] + 1}


async def test_nul_characters_are_stored_as_replacement_characters(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    """PostgreSQL cannot store NUL (SQLite can): both backends record U+FFFD instead."""
    run = await make_run(flow_name="nul\x00flow", parameters={"blob": "a\x00b", "k\x00": 1})
    assert run["flow_name"] == "nul\ufffdflow"
    assert run["parameters"] == {"blob": "a\ufffdb", "k\ufffd": 1}
    line = _log(flow_run_id=run["id"], message="binary \x00 output")
    assert (await client.post("/records", json={"logs": [line]})).json()["logs"] == 1
    stored = (await client.post("/logs/filter", json={"flow_run_id": run["id"]})).json()
    assert stored[0]["message"] == "binary \ufffd output"
    state = {"type": "RUNNING", "message": "started \x00"}
    response = await client.post(f"/flow_runs/{run['id']}/set_state", json={"state": state})
    assert response.status_code == 200
    states = (await client.get(f"/flow_runs/{run['id']}/states")).json()
    assert states[-1]["message"] == "started \ufffd"


async def test_values_json_cannot_carry_are_stored_as_pydantic_writes_them(
    client: httpx.AsyncClient,
) -> None:
    """Python's JSON parser accepts NaN, Infinity and lone surrogates; PostgreSQL (and
    UTF-8) cannot store them. Both backends store null and U+FFFD instead of failing."""
    raw = (
        b'{"flow_name": "etl", "name": "odd \\ud800 one", "tags": ["\\udfff"],'
        b' "parameters": {"nan": NaN, "big": Infinity, "list": [-Infinity, 1.5]}}'
    )
    headers = {"content-type": "application/json"}
    response = await client.post("/flow_runs/", content=raw, headers=headers)
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["name"] == "odd \ufffd one"
    assert run["tags"] == ["\ufffd"]
    assert run["parameters"] == {"nan": None, "big": None, "list": [None, 1.5]}
    # Where a number is required, null is refused by name.
    bad = b'{"flow_name": "etl", "name": "r", "retry_delay_seconds": NaN}'
    response = await client.post("/flow_runs/", content=bad, headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "retry_delay_seconds"


async def test_an_overlong_state_name_is_stored_shortened(
    client: httpx.AsyncClient, make_run: MakeRun
) -> None:
    run = await make_run()
    state = {"type": "RUNNING", "name": "N" * 80}
    response = await client.post(f"/flow_runs/{run['id']}/set_state", json={"state": state})
    assert response.json()["status"] == "ACCEPT"
    assert (await client.get(f"/flow_runs/{run['id']}")).json()["state_name"] == "N" * 50
