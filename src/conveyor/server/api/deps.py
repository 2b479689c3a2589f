"""What route handlers get injected."""

from __future__ import annotations

from fastapi import Request

from conveyor.server.database.engine import Database


async def get_database(request: Request) -> Database:
    # async: FastAPI runs a plain ``def`` dependency on a worker thread, a hop per request.
    database: Database = request.app.state.database
    return database
