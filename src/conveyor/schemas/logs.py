"""A log record as the engine ships it."""

from __future__ import annotations

import datetime
import uuid

from pydantic import BaseModel


class LogRecordCreate(BaseModel):
    name: str
    level: int
    message: str
    timestamp: datetime.datetime
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
