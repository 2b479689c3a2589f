"""Records of flow runs and task runs as the engine reports them."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from pydantic import Field

from conveyor.schemas.base import ConveyorModel
from conveyor.schemas.states import State


class TaskRunInput(ConveyorModel):
    """An upstream dependency of a task run: the task run whose result fed it."""

    task_run_id: uuid.UUID
    parameter: str | None = None
    """The parameter the result was passed as; None for ``wait_for`` dependencies."""


class FlowRun(ConveyorModel):
    id: uuid.UUID
    name: str
    flow_name: str
    flow_version: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    parent_flow_run_id: uuid.UUID | None = None
    parent_task_run_id: uuid.UUID | None = None
    created: datetime.datetime


class TaskRun(ConveyorModel):
    id: uuid.UUID
    name: str
    task_key: str
    flow_run_id: uuid.UUID | None = None
    task_version: str | None = None
    tags: list[str] = Field(default_factory=list)
    dynamic_key: str
    map_index: int | None = None
    task_inputs: list[TaskRunInput] = Field(default_factory=list)
    cache_key: str | None = None
    created: datetime.datetime


class TaskRunStateRecord(ConveyorModel):
    """One state of a task run; ``seq`` orders the states of one run."""

    task_run_id: uuid.UUID
    seq: int
    state: State
