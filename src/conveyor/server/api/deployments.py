"""Deployments: created or replaced by ``(flow_name, name)``, and runs made from them.

Bad references and values are 422s naming the field: an unknown work pool or queue, job
variables the pool's template does not allow, parameters that break the parameter schema.
Nothing is written then. See ``models/deployments.py`` for which future runs a change
deletes.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status

from conveyor.schemas.api import FlowRunRead
from conveyor.schemas.deployments import (
    DeploymentBackfill,
    DeploymentBackfillResult,
    DeploymentCreate,
    DeploymentFilter,
    DeploymentFlowRunCreate,
    DeploymentRead,
    DeploymentScheduleRead,
    DeploymentUpdate,
)
from conveyor.server.api.deps import get_database
from conveyor.server.database.engine import Database
from conveyor.server.models import deployments, scheduling
from conveyor.server.models.deployments import DeploymentView

router = APIRouter(prefix="/deployments", tags=["deployments"])
DB = Annotated[Database, Depends(get_database)]
Segment = Annotated[str, Path(min_length=1, max_length=255)]


def _read(view: DeploymentView) -> DeploymentRead:
    row = view.deployment
    return DeploymentRead.model_validate(
        {
            **{name: getattr(row, name) for name in _ROW_FIELDS},
            "flow_name": view.flow_name,
            "work_pool_name": view.work_pool_name,
            "work_queue_name": view.work_queue_name,
            "schedules": [DeploymentScheduleRead.model_validate(s) for s in view.schedules],
        }
    )


_ROW_FIELDS = tuple(
    name
    for name in DeploymentRead.model_fields
    if name not in {"flow_name", "work_pool_name", "work_queue_name", "schedules"}
)


@router.post("/", response_model=DeploymentRead, status_code=status.HTTP_201_CREATED)
async def deploy(body: DeploymentCreate, database: DB, response: Response) -> DeploymentRead:
    """Create the deployment (201), or replace the one with this flow and name (200; its
    id stays). Its schedules replace the existing set."""
    view, created = await database.write(deployments.deploy, body)
    if not created:
        response.status_code = status.HTTP_200_OK
    return _read(view)


@router.post("/filter", response_model=list[DeploymentRead])
async def filter_deployments(body: DeploymentFilter, database: DB) -> list[DeploymentRead]:
    """Deployments sorted by name, then flow name."""
    return [_read(view) for view in await database.read(deployments.filter_deployments, body)]


@router.get("/name/{flow_name}/{deployment_name}", response_model=DeploymentRead)
async def read_deployment_by_name(
    flow_name: Segment, deployment_name: Segment, database: DB
) -> DeploymentRead:
    view = await database.read(deployments.read_deployment_by_name, flow_name, deployment_name)
    if view is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"No deployment named {flow_name}/{deployment_name}."
        )
    return _read(view)


@router.get("/{deployment_id}", response_model=DeploymentRead)
async def read_deployment(deployment_id: uuid.UUID, database: DB) -> DeploymentRead:
    return _read(await database.read(deployments.existing_deployment, deployment_id))


@router.patch("/{deployment_id}", response_model=DeploymentRead)
async def update_deployment(
    deployment_id: uuid.UUID, body: DeploymentUpdate, database: DB
) -> DeploymentRead:
    """Change the fields sent; ``paused`` pauses or resumes it."""
    return _read(await database.write(deployments.update_deployment, deployment_id, body))


@router.delete("/{deployment_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_deployment(deployment_id: uuid.UUID, database: DB) -> Response:
    """Delete it with its schedules and future auto-scheduled runs; other runs stay."""
    await database.write(deployments.delete_deployment, deployment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{deployment_id}/create_flow_run",
    response_model=FlowRunRead,
    status_code=status.HTTP_201_CREATED,
)
async def create_flow_run(
    deployment_id: uuid.UUID, body: DeploymentFlowRunCreate, database: DB, response: Response
) -> FlowRunRead:
    """A SCHEDULED run (due now unless ``scheduled_time`` says), in the deployment's queue
    or its pool's default queue. A repeated ``idempotency_key`` answers 200 with the run
    the first request made."""
    run, flow_name, created = await database.write(
        deployments.create_deployment_flow_run, deployment_id, body
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    out = FlowRunRead.model_validate(run)
    out.flow_name = flow_name
    return out


@router.post("/{deployment_id}/backfill", response_model=DeploymentBackfillResult)
async def backfill(
    deployment_id: uuid.UUID, body: DeploymentBackfill, database: DB
) -> DeploymentBackfillResult:
    """A run for each scheduled time in ``[start, end)`` without one (past times are due at
    once); a window with more than ``max_runs`` times is a 422 and makes nothing."""
    created, skipped = await database.write(scheduling.backfill, deployment_id, body)
    return DeploymentBackfillResult(created=created, skipped=skipped)
