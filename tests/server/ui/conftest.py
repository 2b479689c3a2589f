"""Fixtures for the web UI's route tests: the real application on each backend (SQLite
and PostgreSQL, through ``database_url`` from tests/server/conftest.py).

* ``app`` (tests/server/conftest.py) -- ``create_app`` over the backend's database.
* ``ui: httpx.AsyncClient`` -- talks to it in-process, base URL at ``/`` (the pages).
* ``api: httpx.AsyncClient`` -- the same application's API, base URL ``/api``.
* ``seed: Seed`` -- records runs, task runs, logs and artifacts through the API, as
  engines and workers do. ``Seed`` and ``now`` live in ui_app.py, which tests import
  by its full name (``from tests.server.ui.ui_app import Seed``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from tests.server.ui.ui_app import Seed


@pytest.fixture
async def ui(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://conveyor.test") as c:
        yield c


@pytest.fixture
def api(client: httpx.AsyncClient) -> httpx.AsyncClient:
    return client  # tests/server/conftest.py's API client, named for what it is beside ``ui``


@pytest.fixture
def seed(api: httpx.AsyncClient) -> Seed:
    return Seed(api)
