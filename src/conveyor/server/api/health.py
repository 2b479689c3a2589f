from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import text
from sqlalchemy.orm import Session

from conveyor.server.api.deps import get_database
from conveyor.server.database.engine import Database

router = APIRouter(tags=["health"])


def _ping(session: Session) -> None:
    session.execute(text("SELECT 1"))


@router.get("/health")
async def health(database: Annotated[Database, Depends(get_database)]) -> dict[str, str]:
    """Liveness and database reachability."""
    await database.read(_ping)
    return {"status": "ok", "database": database.dialect}
