"""Fixtures for the web UI's route tests: the real application on each backend (SQLite
and PostgreSQL, through ``database_url`` from tests/server/conftest.py).

* ``app`` -- ``create_app`` over the backend's database, started.
* ``ui: httpx.AsyncClient`` -- talks to it in-process, base URL at ``/`` (the pages).
* ``api: httpx.AsyncClient`` -- the same application's API, base URL ``/api``.
* ``seed: Seed`` -- records runs, task runs, logs and artifacts through the API, as
  engines and workers do. ``Seed`` and ``now`` live in ui_app.py, which tests import
  by its full name (``from tests.server.ui.ui_app import Seed``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from tests.server.ui.ui_app import Seed

from conveyor.server.app import create_app
from conveyor.settings import Settings


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
