"""Records of flow runs and task runs as the engine reports them."""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from typing import Annotated, Any

from pydantic import AwareDatetime, ConfigDict, Field

from conveyor.schemas.base import ConveyorModel
from conveyor.schemas.states import State

# Task-run records are slotted dataclasses, not pydantic models: the engine makes one per
# task and one per state, and a pydantic model costs ~10x more to build. Pydantic still
# validates them (constraints included) wherever they appear inside an API model.
_FORBID_EXTRA = ConfigDict(extra="forbid")


@dataclasses.dataclass(slots=True, frozen=True)
class TaskRunInput:
    """An upstream dependency of a task run: the task run whose result fed it."""

    __pydantic_config__ = _FORBID_EXTRA

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


@dataclasses.dataclass(slots=True, eq=False)
class TaskRun:
    # The bounds are the server's column sizes: a record that breaks them is refused by name.
    __pydantic_config__ = _FORBID_EXTRA

    id: uuid.UUID
    name: Annotated[str, Field(max_length=255)]
    task_key: Annotated[str, Field(max_length=1000)]
    dynamic_key: Annotated[str, Field(max_length=255)]
    created: AwareDatetime
    flow_run_id: uuid.UUID | None = None
    task_version: Annotated[str | None, Field(max_length=255)] = None
    tags: list[str] = dataclasses.field(default_factory=list)
    map_index: Annotated[int | None, Field(ge=0, le=2**31 - 1)] = None
    task_inputs: list[TaskRunInput] = dataclasses.field(default_factory=list)
    cache_key: Annotated[str | None, Field(max_length=1000)] = None


@dataclasses.dataclass(slots=True, eq=False)
class TaskRunStateRecord:
    """One state of a task run; ``seq`` orders the states of one run."""

    __pydantic_config__ = _FORBID_EXTRA

    task_run_id: uuid.UUID
    seq: Annotated[int, Field(ge=0, le=2**31 - 1)]
    state: State
