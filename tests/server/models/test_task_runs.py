"""Recording task runs: the SQLite fast path for new runs stores exactly the rows the
general path stores, and gives way to it when a run exists already."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from conveyor.schemas.api import RecordBatch
from conveyor.server.database.engine import Database
from conveyor.server.database.migrate import upgrade
from conveyor.server.models import flow_runs, task_runs

pytestmark = pytest.mark.anyio

RECEIVED = "2026-11-22T08:00:00.000000+00:00"
T = "2026-11-22T08:00:0{}.{:06d}Z"


def _batch() -> bytes:
    """A flow run and task runs with every field a run record and its states may have."""
    flow_run_id = str(uuid.uuid4())
    upstream = str(uuid.uuid4())

    def run(n: int, states: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()),
            "flow_run_id": flow_run_id,
            "name": f"task-{n}",
            "task_key": "etl.task",
            "dynamic_key": str(n),
            "created": T.format(1, n),
            "states": states,
            **fields,
        }

    def state(seq: int, type_: str, second: int, **fields: Any) -> dict[str, Any]:
        return {"seq": seq, "type": type_, "timestamp": T.format(second, seq), **fields}

    trivial = [state(1, "PENDING", 1), state(2, "RUNNING", 2), state(3, "COMPLETED", 3)]
    retried = [
        state(1, "PENDING", 1),
        state(2, "RUNNING", 2),
        state(3, "SCHEDULED", 3, name="AwaitingRetry", message="retrying"),
        state(4, "RUNNING", 4),
        state(5, "FAILED", 5, message="boom", state_details={"run_count": 2}),
    ]
    cached = [
        state(1, "PENDING", 1),
        state(
            2,
            "COMPLETED",
            2,
            name="Cached",
            state_details={"cache_key": "k", "cache_expiration": "2026-12-01T00:00:00Z"},
            result_ref={"storage": "/tmp/results", "key": "abc", "serializer": "json"},
        ),
    ]
    shuffled = [state(3, "COMPLETED", 3), state(1, "PENDING", 1), state(2, "RUNNING", 2)]
    repeated = [state(1, "PENDING", 1), state(1, "RUNNING", 2), state(2, "RUNNING", 3)]
    first = run(0, trivial)
    later = {"task_run_id": first["id"], "seq": 4, "state": {"type": "COMPLETED", "name": "Late"}}
    body = {
        "task_run_states": [later],  # on its own, as a state whose run went earlier
        "flow_runs": [
            {
                "id": flow_run_id,
                "flow_name": "etl",
                "name": "brave-otter",
                "state": {"type": "RUNNING", "timestamp": T.format(0, 0)},
            }
        ],
        "task_runs": [
            first,
            run(1, retried, task_version="1.2", tags=["b", "a"], map_index=7, cache_key="ck"),
            run(2, cached, task_inputs=[{"task_run_id": upstream, "parameter": "x"}]),
            run(3, shuffled),
            run(4, repeated),
            run(5, []),
            {**run(6, trivial), "flow_run_id": None},
        ],
    }
    return json.dumps(body).encode()


async def _store(path: Path, body: bytes) -> list[tuple[Any, ...]]:
    database = Database(f"sqlite:///{path}")
    try:
        await upgrade(database)
        batch = RecordBatch.from_json(body)
        await database.write(lambda session: flow_runs.record_flow_runs(session, batch.flow_runs))
        result = await database.write(
            task_runs.record_task_runs, batch.task_runs, batch.task_run_states, RECEIVED
        )
        assert result == (7, 19)
    finally:
        await database.dispose()
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT * FROM task_runs ORDER BY id").fetchall()


async def test_new_runs_are_stored_as_the_general_path_stores_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = _batch()
    fast_path_results: list[int | None] = []
    fast_path = task_runs._insert_new_on_sqlite

    def spy(*args: Any) -> int | None:
        fast_path_results.append(fast_path(*args))
        return fast_path_results[-1]

    monkeypatch.setattr(task_runs, "_insert_new_on_sqlite", spy)
    fast = await _store(tmp_path / "fast.db", body)
    assert fast_path_results == [18]  # + 1 merged  # it was the fast path that stored them
    monkeypatch.setattr(task_runs, "_insert_new_on_sqlite", lambda *args: None)
    general = await _store(tmp_path / "general.db", body)
    assert len(fast) == 7
    assert fast == general


async def test_a_repeated_run_gives_way_to_the_general_path(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'conveyor.db'}")
    try:
        await upgrade(database)
        batch = RecordBatch.from_json(_batch())
        await database.write(lambda session: flow_runs.record_flow_runs(session, batch.flow_runs))
        first = batch.task_runs[:2]
        assert await database.write(task_runs.record_task_runs, first, [], RECEIVED) == (2, 8)
        # One run again among new ones: the fast path writes nothing, the general one
        # records the new run and nothing twice.
        again = batch.task_runs[1:3]
        assert await database.write(task_runs.record_task_runs, again, [], RECEIVED) == (1, 2)
    finally:
        await database.dispose()
