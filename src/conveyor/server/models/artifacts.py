"""Artifacts: rich outputs runs publish. Artifacts sharing a key form that key's history."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from conveyor.schemas.api import ArtifactCreate, ArtifactFilter
from conveyor.server.database import orm


def create_artifact(session: Session, data: ArtifactCreate) -> orm.Artifact:
    artifact = orm.Artifact(
        id=uuid.uuid4(),
        key=data.key,
        type=data.type.value,
        description=data.description,
        data=data.data,
        flow_run_id=data.flow_run_id,
        task_run_id=data.task_run_id,
    )
    session.add(artifact)
    session.flush()
    return artifact


def read_artifact(session: Session, artifact_id: uuid.UUID) -> orm.Artifact | None:
    return session.get(orm.Artifact, artifact_id)


def filter_artifacts(session: Session, flt: ArtifactFilter) -> Sequence[orm.Artifact]:
    """Matching artifacts, newest first."""
    query = select(orm.Artifact)
    if flt.flow_run_id is not None:
        query = query.where(orm.Artifact.flow_run_id == flt.flow_run_id)
    if flt.task_run_id is not None:
        query = query.where(orm.Artifact.task_run_id == flt.task_run_id)
    if flt.key is not None:
        query = query.where(orm.Artifact.key == flt.key)
    if flt.type:
        query = query.where(orm.Artifact.type.in_([t.value for t in flt.type]))
    query = query.order_by(orm.Artifact.created.desc(), orm.Artifact.id.desc())
    result = session.execute(query.limit(flt.limit).offset(flt.offset))
    return result.scalars().all()


def latest_by_key(session: Session, key: str) -> orm.Artifact | None:
    """The newest artifact with this key: the key's current version."""
    result = session.execute(
        select(orm.Artifact)
        .where(orm.Artifact.key == key)
        .order_by(orm.Artifact.created.desc(), orm.Artifact.id.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


def delete_artifact(session: Session, artifact_id: uuid.UUID) -> bool:
    result = session.execute(delete(orm.Artifact).where(orm.Artifact.id == artifact_id))
    return bool(getattr(result, "rowcount", 0))
