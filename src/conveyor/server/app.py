"""``create_app(settings)``: the FastAPI application, API under ``/api``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI

from conveyor.server.api import (
    artifacts,
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
from conveyor.server.database.engine import Database
from conveyor.settings import Settings


def create_app(settings: Settings, *, migrate: bool = True) -> FastAPI:
    """The server over ``settings.effective_database_url``, migrated on start-up."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings.effective_database_url)
        if migrate:
            from conveyor.server.database.migrate import upgrade

            await upgrade(database)
        app.state.database = database
        try:
            yield
        finally:
            await database.dispose()

    app = FastAPI(
        title="Conveyor",
        summary="Workflow orchestration: the server that records and arbitrates every run.",
        version=_version(),
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/api/openapi.json",
    )
    api = APIRouter(prefix="/api")
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
        deployments,
    ):
        api.include_router(module.router)
    app.include_router(api)
    errors.install(app)
    document_bodies(app)
    app.add_middleware(BodySizeLimit)
    return app


def _version() -> str:
    from conveyor import __version__

    return __version__
