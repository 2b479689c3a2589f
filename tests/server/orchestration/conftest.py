"""Fixtures for the orchestration tests: a flow-run factory over the backend's database,
and the API in-process for the tests that go through HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.schemas.api import FlowRunCreate
from conveyor.server.app import create_app
from conveyor.server.database.engine import Database
from conveyor.server.models import flow_runs
from conveyor.settings import Settings


@pytest.fixture
def new_run(database: Database) -> Callable[..., Awaitable[uuid.UUID]]:
    """``await new_run(**FlowRunCreate fields)`` -> the new run's id (Pending unless told)."""

    async def make(**fields: Any) -> uuid.UUID:
        data = FlowRunCreate(**{"flow_name": "etl", "name": "run", **fields})
        run, created = await database.write(flow_runs.create_flow_run, data)
        assert created
        return run.id

    return make


@pytest.fixture
async def client(database_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(home=tmp_path, database_url=database_url), migrate=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://conveyor.test/api") as c:
            yield c
