"""What route handlers get injected."""

from __future__ import annotations

from fastapi import Request

from conveyor.server.database.engine import Database


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database
