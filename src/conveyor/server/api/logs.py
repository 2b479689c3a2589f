from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from conveyor.schemas.api import LogFilter, LogRead
from conveyor.server.api.deps import get_database
from conveyor.server.database.engine import Database
from conveyor.server.models import logs

router = APIRouter(prefix="/logs", tags=["logs"])
DB = Annotated[Database, Depends(get_database)]


@router.post("/filter", response_model=list[LogRead])
async def filter_logs(body: LogFilter, database: DB) -> list[LogRead]:
    """Logs oldest first; pass the last id seen as ``after_id`` to follow new ones."""
    return [LogRead.model_validate(log) for log in await database.read(logs.filter_logs, body)]
