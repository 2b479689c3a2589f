"""Records of flow runs and task runs as the engine reports them."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from pydantic import AwareDatetime, Field

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
    # The bounds are the server's column sizes: a record that breaks them is refused by name.
    id: uuid.UUID
    name: str = Field(max_length=255)
    task_key: str = Field(max_length=1000)
    flow_run_id: uuid.UUID | None = None
    task_version: str | None = Field(default=None, max_length=255)
    tags: list[str] = Field(default_factory=list)
    dynamic_key: str = Field(max_length=255)
    map_index: int | None = Field(default=None, ge=0, le=2**31 - 1)
    task_inputs: list[TaskRunInput] = Field(default_factory=list)
    cache_key: str | None = Field(default=None, max_length=1000)
    created: AwareDatetime


class TaskRunStateRecord(ConveyorModel):
    """One state of a task run; ``seq`` orders the states of one run."""

    task_run_id: uuid.UUID
    seq: int = Field(ge=0, le=2**31 - 1)
    state: State
