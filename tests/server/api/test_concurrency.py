"""Races: clients proposing conflicting transitions at once, and processes sharing SQLite.

Racing requests go through two separate server applications (each with its own
``Database``: its own connection pool and, on SQLite, its own in-process write lock) over
the same database, so the database itself has to arbitrate, as between two servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.server.app import create_app
from conveyor.settings import Settings

pytestmark = pytest.mark.anyio

RowCounts = Callable[[], Awaitable[dict[str, int]]]


@contextlib.asynccontextmanager
async def _server(database_url: str, home: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(home=home, database_url=database_url), migrate=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://conveyor.test/api") as c:
            yield c


@pytest.fixture
async def clients(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two clients, each talking to its own server over the same database."""
    async with _server(database_url, tmp_path) as other:
        yield client, other


async def _new_run(client: httpx.AsyncClient, **fields: Any) -> str:
    response = await client.post("/flow_runs/", json={"flow_name": "etl", "name": "r", **fields})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _propose(client: httpx.AsyncClient, run_id: str, state: dict[str, Any]) -> str:
    state = {**state, "state_details": {"transition_id": str(uuid.uuid4())}}
    response = await client.post(f"/flow_runs/{run_id}/set_state", json={"state": state})
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


async def _history(client: httpx.AsyncClient, run_id: str) -> list[str]:
    return [s["type"] for s in (await client.get(f"/flow_runs/{run_id}/states")).json()]


async def test_of_twenty_clients_starting_a_run_exactly_one_wins(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    run_id = await _new_run(clients[0])
    outcomes = await asyncio.gather(
        *(_propose(clients[n % 2], run_id, {"type": "RUNNING"}) for n in range(20))
    )
    assert Counter(outcomes) == {"ACCEPT": 1, "ABORT": 19}
    assert await _history(clients[0], run_id) == ["PENDING", "RUNNING"]
    run = (await clients[1].get(f"/flow_runs/{run_id}")).json()
    assert (run["state_type"], run["run_count"]) == ("RUNNING", 1)


async def test_of_twenty_workers_claiming_a_scheduled_run_exactly_one_wins(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    due = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)).isoformat()
    scheduled = {"type": "SCHEDULED", "state_details": {"scheduled_time": due}}
    run_id = await _new_run(clients[0], state=scheduled)
    outcomes = await asyncio.gather(
        *(_propose(clients[n % 2], run_id, {"type": "PENDING"}) for n in range(20))
    )
    assert Counter(outcomes) == {"ACCEPT": 1, "ABORT": 19}
    assert await _history(clients[0], run_id) == ["SCHEDULED", "PENDING"]


async def test_completed_racing_failed_one_wins_and_history_agrees(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    runs = [await _new_run(clients[0], name=f"r{n}") for n in range(8)]
    for run_id in runs:
        assert await _propose(clients[0], run_id, {"type": "RUNNING"}) == "ACCEPT"

    async def race(run_id: str, flip: bool) -> tuple[str, str]:
        first, second = clients if flip else clients[::-1]
        completed, failed = await asyncio.gather(
            _propose(first, run_id, {"type": "COMPLETED"}),
            _propose(second, run_id, {"type": "FAILED"}),
        )
        return completed, failed

    results = await asyncio.gather(*(race(run_id, n % 2 == 0) for n, run_id in enumerate(runs)))
    for run_id, (completed, failed) in zip(runs, results, strict=True):
        assert sorted([completed, failed]) == ["ABORT", "ACCEPT"]
        winner = "COMPLETED" if completed == "ACCEPT" else "FAILED"
        assert await _history(clients[1], run_id) == ["PENDING", "RUNNING", winner]
        assert (await clients[0].get(f"/flow_runs/{run_id}")).json()["state_type"] == winner


async def test_a_retried_proposal_racing_its_original_is_recorded_once(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    run_id = await _new_run(clients[0])
    state = {"type": "RUNNING", "state_details": {"transition_id": str(uuid.uuid4())}}
    responses = await asyncio.gather(
        *(
            clients[n % 2].post(f"/flow_runs/{run_id}/set_state", json={"state": state})
            for n in range(10)
        )
    )
    results = [r.json() for r in responses]
    assert {r["status"] for r in results} == {"ACCEPT"}
    assert len({r["state"]["timestamp"] for r in results}) == 1
    assert await _history(clients[0], run_id) == ["PENDING", "RUNNING"]


async def test_racing_creates_with_one_id_make_one_run(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], row_counts: RowCounts
) -> None:
    body = {"id": str(uuid.uuid4()), "flow_name": "brand-new-flow", "name": "r"}
    responses = await asyncio.gather(
        *(clients[n % 2].post("/flow_runs/", json=body) for n in range(10))
    )
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert len({json.dumps(r.json(), sort_keys=True) for r in responses}) == 1
    counts = await row_counts()
    assert (counts["flows"], counts["flow_runs"], counts["flow_run_states"]) == (1, 1, 1)


async def test_racing_batches_record_each_state_once_and_the_highest_seq_wins(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], row_counts: RowCounts
) -> None:
    flow_run_id = await _new_run(clients[0])
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    task_run_id = str(uuid.uuid4())
    task_run = {
        "id": task_run_id,
        "flow_run_id": flow_run_id,
        "name": "t-0",
        "task_key": "t",
        "dynamic_key": "0",
        "created": now,
    }
    assert (await clients[0].post("/records", json={"task_runs": [task_run]})).status_code == 200
    types = ["PENDING", "RUNNING", "SCHEDULED", "RUNNING", "COMPLETED"]
    states = [
        {"task_run_id": task_run_id, "seq": seq, "state": {"type": type_}}
        for seq, type_ in enumerate(types, start=1)
    ]
    # Every state in its own batch, each batch sent twice, all at once, through both servers.
    batches = [{"task_run_states": [s]} for s in states] * 2
    responses = await asyncio.gather(
        *(clients[n % 2].post("/records", json=b) for n, b in enumerate(batches))
    )
    assert all(r.status_code == 200 for r in responses)
    assert sum(r.json()["task_run_states"] for r in responses) == 5
    read = (await clients[1].get(f"/task_runs/{task_run_id}")).json()
    assert (read["state_type"], read["run_count"]) == ("COMPLETED", 2)
    assert (await row_counts())["task_run_states"] == 5


WRITER = textwrap.dedent(
    """
    import asyncio, datetime, pathlib, sys, time, uuid

    from conveyor.client.embedded import connect
    from conveyor.schemas.api import FlowRunCreate, RecordBatch
    from conveyor.schemas.logs import LogRecordCreate
    from conveyor.schemas.records import encode_state, encode_task_run
    from conveyor.schemas.runs import TaskRun, TaskRunStateRecord
    from conveyor.schemas.states import Completed, Running
    from conveyor.settings import Settings

    WORKER, BARRIER, RUNS = int(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
    PROCESSES = int(sys.argv[4])

    async def main() -> None:
        client = await connect(Settings.from_env())  # embedded: CONVEYOR_HOME's SQLite file
        (BARRIER / str(WORKER)).touch()  # everyone starts writing at the same moment
        while len(list(BARRIER.iterdir())) < PROCESSES:
            time.sleep(0.01)
        try:
            for n in range(RUNS):
                now = datetime.datetime.now(datetime.timezone.utc)
                run = await client.create_flow_run(
                    FlowRunCreate(id=uuid.uuid4(), flow_name=f"flow-{n % 3}", name=f"w{WORKER}-{n}")
                )
                await client.set_flow_run_state(run.id, Running())
                task = TaskRun(
                    id=uuid.uuid4(), flow_run_id=run.id, name="t-0", task_key="t",
                    dynamic_key="0", created=now,
                )
                await client.record(RecordBatch(
                    task_runs=[encode_task_run(task)],
                    task_run_states=[
                        encode_state(TaskRunStateRecord(task_run_id=task.id, seq=seq, state=s))
                        for seq, s in ((1, Running()), (2, Completed()))
                    ],
                    logs=[
                        LogRecordCreate(name="w", level=20, message=f"{WORKER}-{n}-{i}",
                                        timestamp=now, flow_run_id=run.id)
                        for i in range(2)
                    ],
                ))
                await client.set_flow_run_state(run.id, Completed())
        finally:
            await client.aclose()
        print("done", WORKER)

    asyncio.run(main())
    """
)


def test_processes_writing_one_sqlite_file_lose_nothing(tmp_path: Path) -> None:
    """4 processes, each with the embedded server over the same CONVEYOR_HOME, write at once
    (and migrate the fresh database at once): every record arrives, none sees a lock error."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["CONVEYOR_HOME"] = str(home)
    processes, runs = 4, 50
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    children = [
        subprocess.Popen(
            [sys.executable, str(script), str(n), str(barrier), str(runs), str(processes)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(processes)
    ]
    outputs = [child.communicate(timeout=90) for child in children]
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        assert "locked" not in err.lower(), err
        assert out.startswith("done"), (out, err)

    async def check() -> None:
        async with _server(f"sqlite:///{home / 'conveyor.db'}", home) as client:
            total = processes * runs
            names: set[str] = set()
            for offset in range(0, total, 200):
                page = await client.post("/flow_runs/filter", json={"limit": 200, "offset": offset})
                names.update(r["name"] for r in page.json() if r["state_type"] == "COMPLETED")
            assert names == {f"w{w}-{n}" for w in range(processes) for n in range(runs)}
            task_runs = await client.post(
                "/task_runs/filter", json={"state_type": ["COMPLETED"], "limit": 200}
            )
            assert len(task_runs.json()) == 200
            messages: list[str] = []
            after = None
            while page := (await client.post("/logs/filter", json={"after_id": after})).json():
                messages += [line["message"] for line in page]
                after = page[-1]["id"]
            assert sorted(messages) == sorted(
                f"{w}-{n}-{i}" for w in range(processes) for n in range(runs) for i in range(2)
            )
            flows = (await client.get("/flows/")).json()
            assert sorted(f["name"] for f in flows) == ["flow-0", "flow-1", "flow-2"]

    asyncio.run(check())
