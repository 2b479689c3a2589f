from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status

from conveyor.schemas.api import MAX_PAGE, FlowCreate, FlowRead
from conveyor.server.api.deps import get_database
from conveyor.server.database.engine import Database
from conveyor.server.models import flows

router = APIRouter(prefix="/flows", tags=["flows"])
DB = Annotated[Database, Depends(get_database)]


@router.post("/", response_model=FlowRead)
async def create_flow(body: FlowCreate, database: DB) -> FlowRead:
    """Create a flow, or return the existing one with that name."""
    flow = await database.write(flows.ensure_flow, body.name, body.tags)
    return FlowRead.model_validate(flow)


@router.get("/", response_model=list[FlowRead])
async def list_flows(
    database: DB,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[FlowRead]:
    return [
        FlowRead.model_validate(f) for f in await database.read(flows.list_flows, limit, offset)
    ]


@router.get("/{flow_id}", response_model=FlowRead)
async def read_flow(flow_id: uuid.UUID, database: DB) -> FlowRead:
    flow = await database.read(flows.read_flow, flow_id)
    if flow is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No flow with id {flow_id}.")
    return FlowRead.model_validate(flow)


@router.delete("/{flow_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_flow(flow_id: uuid.UUID, database: DB) -> Response:
    deleted = await database.write(flows.delete_flow, flow_id)
    if not deleted:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No flow with id {flow_id}.")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
