"""Plain helpers for the web UI's route tests (the fixtures are in conftest.py):

* ``Seed`` -- records runs, task runs, logs and artifacts through the API, as engines and
  workers do (the ``seed`` fixture is one);
* ``now(offset_seconds)`` -- an ISO timestamp, now or that many seconds away.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import httpx


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
