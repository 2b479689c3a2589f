"""Fixtures for the orchestration tests: a flow-run factory over the backend's database,
and the API in-process for the tests that go through HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from conveyor.schemas.api import FlowRunCreate
from conveyor.server.database.engine import Database
from conveyor.server.models import flow_runs


@pytest.fixture
def new_run(database: Database) -> Callable[..., Awaitable[uuid.UUID]]:
    """``await new_run(**FlowRunCreate fields)`` -> the new run's id (Pending unless told)."""

    async def make(**fields: Any) -> uuid.UUID:
        data = FlowRunCreate(**{"flow_name": "etl", "name": "run", **fields})
        run, created = await database.write(flow_runs.create_flow_run, data)
        assert created
        return run.id

    return make
