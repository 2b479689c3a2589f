"""Fixtures for the API contract tests: the real application over each backend's database.

* ``client: httpx.AsyncClient`` -- talks to ``create_app`` in-process (httpx's ASGI
  transport, the app's lifespan entered), base URL ending in ``/api``.
* ``row_counts`` -- ``await row_counts()`` is the number of rows in every table, read
  straight from the database: how tests prove that a refused request wrote nothing.
* ``make_run`` -- ``await make_run(**fields)`` creates a flow run through the API and
  returns its JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from conveyor.server.database import orm
from conveyor.server.database.engine import Database

TABLES = (
    orm.Flow,
    orm.FlowRun,
    orm.FlowRunState,
    orm.TaskRun,
    orm.Log,
    orm.WorkPool,
    orm.WorkQueue,
    orm.Worker,
    orm.Deployment,
    orm.DeploymentSchedule,
)

# Rows per table, plus "task_run_states": the entries of every task run's history.
RowCounts = Callable[[], Awaitable[dict[str, int]]]
MakeRun = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def row_counts(database: Database) -> RowCounts:
    def count_in(session: Session) -> dict[str, int]:
        counts = {
            str(model.__tablename__): session.execute(
                select(func.count()).select_from(model)
            ).scalar_one()
            for model in TABLES
        }
        # Task-run states live in their run's row, as a JSON list: count the entries.
        length = (
            func.jsonb_array_length if database.dialect == "postgresql" else func.json_array_length
        )
        states = session.execute(select(func.sum(length(orm.TaskRun.states)))).scalar_one()
        counts["task_run_states"] = int(states or 0)
        return counts

    async def count() -> dict[str, int]:
        return await database.read(count_in)

    return count


@pytest.fixture
def make_run(client: httpx.AsyncClient) -> MakeRun:
    async def make(**fields: Any) -> dict[str, Any]:
        body = {"flow_name": "etl", "name": "run", **fields}
        response = await client.post("/flow_runs/", json=body)
        assert response.status_code == 201, response.text
        run: dict[str, Any] = response.json()
        return run

    return make
