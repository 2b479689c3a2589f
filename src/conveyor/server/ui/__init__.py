"""The web UI: server-rendered pages at ``/``, live through htmx polling of fragments.

Only the server imports this package (``create_app``); ``import conveyor`` and the
``conveyor`` command never load it. See docs/ui.md for the design.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from conveyor.server.ui import common

STATIC_PATH = "/ui-static"


def install(app: FastAPI) -> None:
    """Mount the pages at ``/`` and their static files at ``STATIC_PATH``."""
    from conveyor.server.ui import (
        catalog,
        dashboard,
        deployment_run,
        deployments,
        flow_run,
        flow_runs,
        work_pools,
    )

    # deployment_run before deployments: its POST .../run is not a pause or resume.
    pages = (dashboard, flow_runs, flow_run, deployment_run, deployments, work_pools, catalog)
    for module in pages:
        app.include_router(module.router, include_in_schema=False)
    static = StaticFiles(directory=Path(__file__).parent / "static")
    app.mount(STATIC_PATH, static, name="ui-static")
    app.add_exception_handler(Exception, common.server_error)
