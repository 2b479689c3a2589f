"""A log record as the engine ships it."""

from __future__ import annotations

import uuid

from pydantic import AwareDatetime, Field

from conveyor.schemas.base import ConveyorModel


class LogRecordCreate(ConveyorModel):
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    """Made by the client, so a batch sent twice records each line once."""
    name: str
    level: int = Field(ge=0, le=2**31 - 1)
    message: str
    timestamp: AwareDatetime
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
