"""Request and response bodies for work pools, work queues, workers and deployments.

jsonschema is imported inside the functions that use it, so importing this module costs
no more than pydantic does.
"""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Any

from pydantic import AwareDatetime, Field, ValidationInfo, field_validator, model_validator

from conveyor.schemas.api import MAX_INT32, MAX_PAGE, VARIABLE_NAME_PATTERN, Input, Output
from conveyor.schemas.schedules import Schedule
from conveyor.schemas.sources import CodeSource
from conveyor.schemas.work_pools import BaseJobTemplate, WorkPoolType

NAME_PATTERN = VARIABLE_NAME_PATTERN
"""A pool's or queue's name: 1 to 255 letters, digits, ``_``, ``.`` or ``-`` (a URL segment)."""
DEPLOYMENT_NAME_PATTERN = r"^[^/\x00-\x1f]+$"
"""A deployment's name: no ``/`` (the CLI writes ``flow-name/deployment-name``)."""
DEFAULT_QUEUE = "default"
"""Every pool has this queue, made with it (priority 1); it cannot be deleted."""
WORKER_OFFLINE_AFTER_SECONDS = 90.0
"""A worker is online while its last heartbeat is newer than this."""

_Name = Field(min_length=1, max_length=255, pattern=NAME_PATTERN)
_Limit = Field(default=None, ge=0, le=MAX_INT32)
_Offset = Field(default=0, ge=0, le=1_000_000)


# -- work pools -------------------------------------------------------------------------
class WorkPoolCreate(Input):
    name: str = _Name
    type: WorkPoolType = WorkPoolType.PROCESS
    description: str | None = None
    base_job_template: BaseJobTemplate | None = None
    """Omitted: the default template of ``type`` (``default_job_template``)."""
    concurrency_limit: int | None = _Limit
    """How many of the pool's runs may run at once; None: no limit."""
    paused: bool = False


class WorkPoolUpdate(Input):
    """Only the fields sent change; ``null`` clears ``description`` or ``concurrency_limit``."""

    description: str | None = None
    base_job_template: BaseJobTemplate | None = None
    concurrency_limit: int | None = _Limit
    paused: bool = False


class WorkPoolRead(Output):
    id: uuid.UUID
    name: str
    type: WorkPoolType
    description: str | None
    base_job_template: dict[str, Any]
    concurrency_limit: int | None
    paused: bool
    created: datetime.datetime
    updated: datetime.datetime


class WorkPoolFilter(Input):
    """Pools sorted by name."""

    name: list[str] | None = None
    type: list[WorkPoolType] | None = None
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    offset: int = _Offset


# -- work queues ------------------------------------------------------------------------
class WorkQueueCreate(Input):
    name: str = _Name
    description: str | None = None
    priority: int | None = Field(default=None, ge=1, le=MAX_INT32)
    """1 is served first; omitted, after every queue the pool has."""
    concurrency_limit: int | None = _Limit
    paused: bool = False


class WorkQueueUpdate(Input):
    """Only the fields sent change; ``null`` clears ``description`` or ``concurrency_limit``."""

    description: str | None = None
    priority: int = Field(default=1, ge=1, le=MAX_INT32)
    concurrency_limit: int | None = _Limit
    paused: bool = False


class WorkQueueRead(Output):
    id: uuid.UUID
    work_pool_id: uuid.UUID
    work_pool_name: str | None = None
    name: str
    description: str | None
    priority: int
    concurrency_limit: int | None
    paused: bool
    created: datetime.datetime
    updated: datetime.datetime


class WorkQueueFilter(Input):
    """A pool's queues by priority, then name."""

    name: list[str] | None = None
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    offset: int = _Offset


# -- workers ----------------------------------------------------------------------------
class WorkerHeartbeat(Input):
    name: str = Field(min_length=1, max_length=255)


class WorkerRead(Output):
    id: uuid.UUID
    work_pool_id: uuid.UUID
    name: str
    last_heartbeat: datetime.datetime
    created: datetime.datetime
    online: bool = False
    """Heard from within ``WORKER_OFFLINE_AFTER_SECONDS``."""


class WorkerFilter(Input):
    """A pool's workers, most recently heard from first."""

    online: bool | None = None
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    offset: int = _Offset


# -- deployments ------------------------------------------------------------------------
class CollisionStrategy(str, enum.Enum):
    """What a new run does while the deployment's concurrency limit is full."""

    ENQUEUE = "ENQUEUE"
    CANCEL_NEW = "CANCEL_NEW"


class DeploymentScheduleCreate(Input):
    schedule: Schedule
    active: bool = True
    parameters: dict[str, Any] = Field(default_factory=dict)
    """Override the deployment's default parameters for the runs of this schedule."""


class DeploymentScheduleRead(Output):
    id: uuid.UUID
    schedule: Schedule
    active: bool
    parameters: dict[str, Any]
    created: datetime.datetime


class DeploymentCreate(Input):
    """A deployment, created, or replaced whole when ``(flow_name, name)`` exists (its id
    stays)."""

    flow_name: str = Field(min_length=1, max_length=255)
    name: str = Field(min_length=1, max_length=255, pattern=DEPLOYMENT_NAME_PATTERN)
    entrypoint: str = Field(min_length=1, max_length=1000)
    """``path/to/file.py:flow`` or ``package.module:flow``, inside the code source."""
    source: CodeSource | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    """Defaults for the flow's parameters; must fit ``parameter_schema``."""
    parameter_schema: dict[str, Any] = Field(default_factory=dict)
    """A Draft 2020-12 JSON schema of the parameters (``{}`` accepts any)."""
    work_pool_name: str | None = Field(default=None, max_length=255)
    """None: no pool, the deployment is served by its own process (``flow.serve()``)."""
    work_queue_name: str | None = Field(default=None, max_length=255)
    """None: the pool's default queue."""
    job_variables: dict[str, Any] = Field(default_factory=dict)
    schedules: list[DeploymentScheduleCreate] = Field(default_factory=list, max_length=100)
    tags: list[str] = Field(default_factory=list)
    version: str | None = Field(default=None, max_length=255)
    description: str | None = None
    paused: bool = False
    concurrency_limit: int | None = _Limit
    collision_strategy: CollisionStrategy = CollisionStrategy.ENQUEUE

    @field_validator("parameter_schema")
    @classmethod
    def _a_json_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise ValueError(f"not a valid JSON schema: {exc.message}") from None
        return schema

    @model_validator(mode="after")
    def _queue_needs_pool(self) -> DeploymentCreate:
        if self.work_queue_name is not None and self.work_pool_name is None:
            raise ValueError("work_queue_name: a queue needs a work_pool_name")
        return self


class DeploymentUpdate(Input):
    """Only the fields sent change; ``null`` clears the nullable ones. ``schedules``
    replaces the whole set."""

    paused: bool = False
    schedules: list[DeploymentScheduleCreate] = Field(default_factory=list, max_length=100)
    parameters: dict[str, Any] = Field(default_factory=dict)
    job_variables: dict[str, Any] = Field(default_factory=dict)
    work_queue_name: str | None = Field(default=None, max_length=255)
    tags: list[str] = Field(default_factory=list)
    version: str | None = Field(default=None, max_length=255)
    description: str | None = None
    concurrency_limit: int | None = _Limit
    collision_strategy: CollisionStrategy = CollisionStrategy.ENQUEUE


class DeploymentRead(Output):
    id: uuid.UUID
    flow_id: uuid.UUID
    flow_name: str
    name: str
    entrypoint: str
    source: CodeSource | None
    parameters: dict[str, Any]
    parameter_schema: dict[str, Any]
    work_pool_id: uuid.UUID | None
    work_pool_name: str | None
    work_queue_id: uuid.UUID | None
    work_queue_name: str | None
    """The deployment's queue; None when it uses its pool's default queue."""
    job_variables: dict[str, Any]
    schedules: list[DeploymentScheduleRead]
    tags: list[str]
    version: str | None
    description: str | None
    paused: bool
    concurrency_limit: int | None
    collision_strategy: CollisionStrategy
    created: datetime.datetime
    updated: datetime.datetime


class DeploymentFilter(Input):
    """Deployments sorted by name, then flow name."""

    flow_name: list[str] | None = None
    name: list[str] | None = None
    work_pool_name: list[str] | None = None
    paused: bool | None = None
    tags_all: list[str] | None = None
    """Deployments carrying every one of these tags."""
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    offset: int = _Offset


class DeploymentFlowRunCreate(Input):
    """A run of a deployment. Parameters are laid over the deployment's defaults, job
    variables over the pool's and the deployment's."""

    name: str | None = Field(default=None, min_length=1, max_length=255)
    """None: made up from the deployment's name."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    job_variables: dict[str, Any] = Field(default_factory=dict)
    scheduled_time: AwareDatetime | None = None
    """When the run is due; None: now."""
    tags: list[str] = Field(default_factory=list)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)
    """Repeating a request with the same key returns the run the first one created."""
    parent_flow_run_id: uuid.UUID | None = None
    parent_task_run_id: uuid.UUID | None = None


MAX_BACKFILL_RUNS = 1000
"""The most runs one backfill may make; ``max_runs`` defaults to 100."""


class DeploymentBackfill(Input):
    """Make a run for every scheduled time of the deployment's active schedules in
    ``[start, end)`` that has none yet."""

    start: AwareDatetime
    end: AwareDatetime
    max_runs: int = Field(default=100, ge=1, le=MAX_BACKFILL_RUNS)
    """Refuse (422) a window holding more scheduled times than this."""

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: datetime.datetime, info: ValidationInfo) -> datetime.datetime:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise ValueError("must be after start")
        return end


class DeploymentBackfillResult(Output):
    created: int
    """Runs made."""
    skipped: int
    """Scheduled times in the window that already had a run (scheduled or backfilled)."""


def parameter_errors(schema: dict[str, Any], parameters: dict[str, Any]) -> list[tuple[str, str]]:
    """Every way ``parameters`` break ``schema`` (Draft 2020-12), as ``(field, message)``
    with the field a dotted path (``x``, ``rows[0].id``); a missing required parameter is
    named itself. Empty when they fit."""
    from jsonschema import Draft202012Validator
    from referencing import Registry

    # An empty registry: the schema comes from an API client; its $refs must not be fetched.
    validator = Draft202012Validator(schema, registry=Registry())
    errors: list[tuple[str, str]] = []
    # Paths mix names and indexes, which do not compare: sort them as text.
    by_path = sorted(
        validator.iter_errors(parameters), key=lambda e: [str(p) for p in e.absolute_path]
    )
    for error in by_path:
        path = [str(p) if isinstance(p, str) else f"[{p}]" for p in error.absolute_path]
        where = ".".join(path).replace(".[", "[")
        missing = error.validator_value if error.validator == "required" else None
        if isinstance(missing, list) and isinstance(error.instance, dict):
            prefix = f"{where}." if where else ""
            errors += [(prefix + n, "is required") for n in missing if n not in error.instance]
        else:
            errors.append((where, error.message))
    return errors
