"""Artifacts: rich outputs (markdown, tables, links, progress) that runs publish."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from sqlalchemy.orm import Session

from conveyor.schemas.api import (
    ARTIFACT_KEY_MAX_LENGTH,
    ARTIFACT_KEY_PATTERN,
    ArtifactCreate,
    ArtifactFilter,
    ArtifactRead,
)
from conveyor.server.api.deps import get_database
from conveyor.server.database.engine import Database
from conveyor.server.models import artifacts, flow_runs

router = APIRouter(prefix="/artifacts", tags=["artifacts"])
DB = Annotated[Database, Depends(get_database)]
Key = Annotated[
    str, Path(min_length=1, max_length=ARTIFACT_KEY_MAX_LENGTH, pattern=ARTIFACT_KEY_PATTERN)
]


def _missing(artifact_id: uuid.UUID) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"No artifact with id {artifact_id}.")


@router.post("/", response_model=ArtifactRead, status_code=status.HTTP_201_CREATED)
async def create_artifact(body: ArtifactCreate, database: DB) -> ArtifactRead:
    """Publish an artifact; one with a key becomes that key's latest version."""

    def create(session: Session) -> ArtifactRead:
        flow_run_id = body.flow_run_id
        if flow_run_id is not None and flow_runs.read_flow_run(session, flow_run_id) is None:
            raise HTTPException(
                422,  # (the constant was renamed across Starlette versions)
                f"flow_run_id: no flow run with id {flow_run_id}.",
            )
        return ArtifactRead.model_validate(artifacts.create_artifact(session, body))

    return await database.write(create)


@router.post("/filter", response_model=list[ArtifactRead])
async def filter_artifacts(body: ArtifactFilter, database: DB) -> list[ArtifactRead]:
    """Matching artifacts, newest first."""
    rows = await database.read(artifacts.filter_artifacts, body)
    return [ArtifactRead.model_validate(a) for a in rows]


@router.get("/latest/{key}", response_model=ArtifactRead)
async def read_latest_artifact(key: Key, database: DB) -> ArtifactRead:
    """The newest artifact with this key."""
    artifact = await database.read(artifacts.latest_by_key, key)
    if artifact is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No artifact with key {key!r}.")
    return ArtifactRead.model_validate(artifact)


@router.get("/{artifact_id}", response_model=ArtifactRead)
async def read_artifact(artifact_id: uuid.UUID, database: DB) -> ArtifactRead:
    artifact = await database.read(artifacts.read_artifact, artifact_id)
    if artifact is None:
        raise _missing(artifact_id)
    return ArtifactRead.model_validate(artifact)


@router.delete("/{artifact_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_artifact(artifact_id: uuid.UUID, database: DB) -> Response:
    deleted = await database.write(artifacts.delete_artifact, artifact_id)
    if not deleted:
        raise _missing(artifact_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
