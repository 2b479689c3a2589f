"""Fixtures for the service tests. Services are driven by calling ``run_once`` with the
time the test wants: nothing sleeps.

* ``client: httpx.AsyncClient`` -- the server's API in-process (base URL ending in
  ``/api``), without services, to make runs and read them back as clients do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from conveyor.server.app import create_app
from conveyor.settings import Settings


@pytest.fixture
async def client(database_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(home=tmp_path, database_url=database_url), migrate=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://conveyor.test/api") as c:
            yield c
