"""``create_app(settings)``: the FastAPI application, API under ``/api``, web UI at ``/``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI

from conveyor.server import ui
from conveyor.server.api import (
    artifacts,
    claims,
    concurrency_limits,
    deployments,
    errors,
    flow_runs,
    flows,
    health,
    logs,
    task_runs,
    variables,
    work_pools,
)
from conveyor.server.api.json_body import document_bodies
from conveyor.server.api.limits import BodySizeLimit
from conveyor.server.api.routing import include_flat
from conveyor.server.database.engine import Database
from conveyor.settings import Settings


def create_app(
    settings: Settings, *, migrate: bool = True, services: bool = False, warm_up: bool = False
) -> FastAPI:
    """The server over ``settings.effective_database_url``, migrated on start-up.

    With ``services``, it also runs the background services ``settings.services``
    enables, from start-up to shutdown: ``conveyor server start`` does; the embedded
    local database and the tests do not. With ``warm_up``, start-up also does the work
    its first requests would otherwise do (``server.warm_up``)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings.effective_database_url)
        if migrate:
            from conveyor.server.database.migrate import upgrade

            await upgrade(database)
        app.state.database = database
        # Made here, not on first use, so that ExpiredLeases wakes the requests the API parks.
        app.state.concurrency_waiters = waiters = concurrency_limits.SlotWaiters()
        app.state.claim_waiters = claims.ClaimWaiters()
        if warm_up:
            from conveyor.server import warm_up as warming

            await warming.warm_up(app)
        loops = []
        if services:
            from conveyor.server.services.registry import build_services

            loops = build_services(settings.services, database, on_slots_freed=waiters.notify)
        app.state.services = loops
        try:
            for loop in loops:
                loop.start()
            yield
        finally:
            for loop in loops:
                await loop.stop()
            await database.dispose()

    app = FastAPI(
        title="Conveyor",
        summary="Workflow orchestration: the server that records and arbitrates every run.",
        version=_version(),
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/api/openapi.json",
    )
    for module in (
        health,
        flows,
        flow_runs,
        task_runs,
        logs,
        variables,
        artifacts,
        concurrency_limits,
        work_pools,
        claims,
    ):
        include_flat(app, module.router, prefix="/api")
    # Runs made from a deployment wake the workers waiting to claim them.
    include_flat(
        app,
        deployments.router,
        prefix="/api",
        dependencies=[Depends(claims.wake_claimers_after_runs_are_made)],
    )
    ui.install(app)  # the web pages at /, after the API so /api and /docs stay theirs
    errors.install(app)
    document_bodies(app)
    app.add_middleware(BodySizeLimit)
    return app


def _version() -> str:
    from conveyor import __version__

    return __version__
