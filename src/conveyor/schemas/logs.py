"""A log record as the engine ships it."""

from __future__ import annotations

import datetime
import uuid

from conveyor.schemas.base import ConveyorModel


class LogRecordCreate(ConveyorModel):
    name: str
    level: int
    message: str
    timestamp: datetime.datetime
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
