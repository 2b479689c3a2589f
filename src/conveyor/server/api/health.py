from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import text

from conveyor.server.api.deps import get_database
from conveyor.server.database.engine import Database

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(database: Annotated[Database, Depends(get_database)]) -> dict[str, str]:
    """Liveness and database reachability."""
    async with database.read() as session:
        await session.execute(text("SELECT 1"))
    return {"status": "ok", "database": database.dialect}
