"""Fixtures and helpers for the web UI's route tests: the real application on each backend.

Test modules import the fixtures they use from here (``from ui_app import api, app, ...``):
a conftest.py in this folder would clash, for mypy, with the other folders' conftests.

* ``app`` -- ``create_app`` over the backend's database (``database_url``), started.
* ``ui: httpx.AsyncClient`` -- talks to it in-process, base URL at ``/`` (the pages).
* ``api: httpx.AsyncClient`` -- the same application's API, base URL ``/api``.
* ``seed: Seed`` -- records runs, task runs, logs and artifacts through the API, as
  engines and workers do.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conveyor.server.app import create_app
from conveyor.settings import Settings


def now(offset_seconds: float = 0.0) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc)
    return (moment + datetime.timedelta(seconds=offset_seconds)).isoformat()


class Seed:
    """Records data through the API, as engines and workers do."""

    def __init__(self, api: httpx.AsyncClient) -> None:
        self.api = api

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        response = await self.api.post(path, json=body)
        assert response.status_code < 300, response.text
        return response.json()

    async def run(
        self, flow: str = "etl", name: str = "run", state: str | None = None, **fields: Any
    ) -> str:
        body: dict[str, Any] = {"flow_name": flow, "name": name, **fields}
        run = await self.post("/flow_runs/", body)
        if state is not None:
            await self.set_state(run["id"], state)
        return str(run["id"])

    async def set_state(self, run_id: str, type_: str, message: str | None = None) -> None:
        state: dict[str, Any] = {"type": type_, "message": message}
        await self.post(f"/flow_runs/{run_id}/set_state", {"state": state, "force": True})

    async def task_run(self, run_id: str, name: str, *states: str) -> str:
        task_id = str(uuid.uuid4())
        task = {
            "id": task_id,
            "flow_run_id": run_id,
            "name": name,
            "task_key": f"etl.{name}",
            "dynamic_key": "0",
            "created": now(),
        }
        history = [
            {"task_run_id": task_id, "seq": i + 1, "state": {"type": t, "timestamp": now(i)}}
            for i, t in enumerate(states)
        ]
        await self.post("/records", {"task_runs": [task], "task_run_states": history})
        return task_id

    async def log(self, run_id: str, message: str, level: int = 20) -> None:
        line = {
            "id": str(uuid.uuid4()),
            "flow_run_id": run_id,
            "name": "conveyor.flow_runs",
            "level": level,
            "message": message,
            "timestamp": now(),
        }
        await self.post("/records", {"logs": [line]})

    async def artifact(self, run_id: str, type_: str, data: Any, key: str | None = None) -> None:
        await self.post(
            "/artifacts/", {"type": type_, "data": data, "flow_run_id": run_id, "key": key}
        )


@pytest.fixture
async def app(database_url: str, tmp_path: Path) -> AsyncIterator[FastAPI]:
    application = create_app(Settings(home=tmp_path, database_url=database_url), migrate=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def ui(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://conveyor.test") as c:
        yield c


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://conveyor.test/api") as c:
        yield c


@pytest.fixture
def seed(api: httpx.AsyncClient) -> Seed:
    return Seed(api)
