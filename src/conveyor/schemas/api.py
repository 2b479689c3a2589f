"""Request and response bodies of the REST API (``/api``)."""

from __future__ import annotations

import datetime
import enum
import json
import math
import re
import uuid
from typing import Any, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from conveyor.schemas.logs import LogRecordCreate
from conveyor.schemas.records import TaskRunIn, TaskRunStateIn
from conveyor.schemas.states import State, StateType

MAX_PAGE = 200
MAX_INT32 = 2**31 - 1
MAX_RETRY_DELAY_SECONDS = 366 * 24 * 3600.0


class Input(BaseModel):
    """A request body: unknown fields are an error naming them, not silently dropped.

    Values one backend cannot store are made storable the same way on both: NUL and lone
    surrogates in strings become U+FFFD (PostgreSQL and UTF-8 refuse them), and NaN or
    Infinity (not JSON; Python's parser accepts them) become null, as pydantic writes them.
    So a log line or a parameter carrying one is recorded, not refused with a 500.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        if isinstance(data, dict) and not _storable_as_is(data):
            return _made_storable(data)
        return data


def _storable_as_is(data: dict[str, Any]) -> bool:
    # One json.dumps (C speed) spots the rare bad value before any Python walk is paid for.
    # Objects (a client building a body from models) are skipped: the server sees JSON.
    try:
        text = json.dumps(data, default=_skip, skipkeys=True, allow_nan=False, ensure_ascii=False)
        text.encode()
    except ValueError:  # NaN/Infinity, or a lone surrogate (UnicodeEncodeError)
        return False
    return "\\u0000" not in text


def _skip(value: Any) -> None:
    return None


def _made_storable(value: Any) -> Any:
    if isinstance(value, str):
        value = value.replace("\x00", "\ufffd")
        try:
            value.encode()
        except UnicodeEncodeError:
            value = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {_made_storable(k): _made_storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_made_storable(v) for v in value]
    return value


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# -- flows ------------------------------------------------------------------------------
class FlowCreate(Input):
    name: str = Field(min_length=1, max_length=255)
    tags: list[str] = Field(default_factory=list)


class FlowRead(Output):
    id: uuid.UUID
    name: str
    tags: list[str]
    created: datetime.datetime


# -- variables --------------------------------------------------------------------------
VARIABLE_NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
"""A variable's name: 1 to 255 letters, digits, ``_``, ``.`` or ``-`` (it is a URL segment)."""
VARIABLE_NAME_MAX_LENGTH = 255


class VariableSet(Input):
    """A variable's new value (any JSON, ``null`` included) and tags; replaces both."""

    value: Any
    tags: list[str] = Field(default_factory=list)


class VariableRead(Output):
    id: uuid.UUID
    name: str
    value: Any
    tags: list[str]
    created: datetime.datetime
    updated: datetime.datetime


# -- artifacts --------------------------------------------------------------------------
ARTIFACT_KEY_PATTERN = r"^[a-z0-9-]+$"
"""An artifact's key: lowercase letters, digits and dashes (as in Prefect)."""
ARTIFACT_KEY_MAX_LENGTH = 255


class ArtifactType(str, enum.Enum):
    MARKDOWN = "markdown"
    TABLE = "table"
    LINK = "link"
    PROGRESS = "progress"


def _check_artifact_data(type_: ArtifactType, data: Any) -> Any:
    """``data`` if it is the right shape for ``type_``, else a ValueError saying why."""
    if type_ is ArtifactType.MARKDOWN:
        if not isinstance(data, str):
            raise ValueError("markdown artifact data must be a string")
    elif type_ is ArtifactType.TABLE:
        if isinstance(data, list):
            if not all(isinstance(row, dict) for row in data):
                raise ValueError("table artifact data as a list must hold row objects")
        elif isinstance(data, dict):
            columns, rows = data.get("columns"), data.get("rows")
            if set(data) != {"columns", "rows"} or not isinstance(columns, list):
                raise ValueError('table artifact data must be {"columns": [...], "rows": [...]}')
            if not all(isinstance(c, str) for c in columns):
                raise ValueError("table artifact columns must be strings")
            if not isinstance(rows, list) or not all(
                isinstance(row, list) and len(row) == len(columns) for row in rows
            ):
                raise ValueError("table artifact rows must be lists as long as the columns")
        else:
            raise ValueError("table artifact data must be a list of rows or columns and rows")
    elif type_ is ArtifactType.LINK:
        if (
            not isinstance(data, dict)
            or not set(data) <= {"url", "text"}
            or not isinstance(data.get("url"), str)
            or not data["url"]
            or not isinstance(data.get("text"), (str, type(None)))
        ):
            raise ValueError('link artifact data must be {"url": str, "text": str | null}')
        data = {"url": data["url"], "text": data.get("text")}
    elif type_ is ArtifactType.PROGRESS and (
        isinstance(data, bool) or not isinstance(data, (int, float)) or not 0 <= data <= 100
    ):
        raise ValueError("progress artifact data must be a number from 0 to 100")
    return data


class ArtifactCreate(Input):
    """A new artifact. ``data`` depends on ``type``: markdown a string; table a list of row
    objects or ``{"columns": [...], "rows": [[...]]}``; link ``{"url", "text"}``; progress a
    number from 0 to 100."""

    key: str | None = Field(
        default=None, min_length=1, max_length=ARTIFACT_KEY_MAX_LENGTH, pattern=ARTIFACT_KEY_PATTERN
    )
    type: ArtifactType
    description: str | None = None
    data: Any
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None

    @field_validator("data")
    @classmethod
    def _data_fits_type(cls, data: Any, info: ValidationInfo) -> Any:
        type_ = info.data.get("type")
        if type_ is None:  # the type itself was invalid, and is reported
            return data
        return _check_artifact_data(type_, data)


class ArtifactRead(Output):
    id: uuid.UUID
    key: str | None
    type: ArtifactType
    description: str | None
    data: Any
    flow_run_id: uuid.UUID | None
    task_run_id: uuid.UUID | None
    created: datetime.datetime


class ArtifactFilter(Input):
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
    key: str | None = Field(default=None, max_length=ARTIFACT_KEY_MAX_LENGTH)
    type: list[ArtifactType] | None = None
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=1_000_000)


# -- concurrency limits -----------------------------------------------------------------
CONCURRENCY_LIMIT_NAME_PATTERN = VARIABLE_NAME_PATTERN
"""A limit's name (a tag for task limits): a URL segment, like a variable's name."""
MAX_ACQUIRE_TIMEOUT_SECONDS = 60.0
DEFAULT_LEASE_TTL_SECONDS = 30.0


class ConcurrencyLimitCreate(Input):
    """Create a limit, or change the limit of an existing one (by name)."""

    name: str = Field(min_length=1, max_length=255, pattern=CONCURRENCY_LIMIT_NAME_PATTERN)
    limit: int = Field(ge=0, le=MAX_INT32)


class ConcurrencyLimitRead(Output):
    id: uuid.UUID
    name: str
    limit: int
    active_slots: int = 0
    """Slots held by unexpired leases."""
    created: datetime.datetime
    updated: datetime.datetime


class ConcurrencyAcquire(Input):
    """Take ``slots`` slots, waiting up to ``timeout_seconds`` for them to be free."""

    slots: int = Field(default=1, ge=1, le=MAX_INT32)
    holder: str | None = Field(default=None, max_length=255)
    ttl_seconds: float = Field(default=DEFAULT_LEASE_TTL_SECONDS, gt=0, le=24 * 3600.0)
    timeout_seconds: float = Field(default=0.0, ge=0, le=MAX_ACQUIRE_TIMEOUT_SECONDS)


class ConcurrencyLeaseRenew(Input):
    ttl_seconds: float = Field(default=DEFAULT_LEASE_TTL_SECONDS, gt=0, le=24 * 3600.0)


class ConcurrencyLeaseRead(Output):
    id: uuid.UUID
    limit_id: uuid.UUID
    slots: int
    holder: str | None
    expires: datetime.datetime
    created: datetime.datetime


# -- flow runs --------------------------------------------------------------------------
class FlowRunCreate(Input):
    """A new flow run. ``id`` may be chosen by the client, which makes creation idempotent."""

    id: uuid.UUID | None = None
    flow_name: str = Field(min_length=1, max_length=255)
    name: str = Field(min_length=1, max_length=255)
    flow_version: str | None = Field(default=None, max_length=255)
    parameters: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    parent_flow_run_id: uuid.UUID | None = None
    parent_task_run_id: uuid.UUID | None = None
    retries: int = Field(default=0, ge=0, le=MAX_INT32)
    retry_delay_seconds: float = Field(default=0.0, ge=0, le=MAX_RETRY_DELAY_SECONDS)
    state: State | None = None
    """The initial state; Pending when omitted."""


class FlowRunRead(Output):
    id: uuid.UUID
    flow_id: uuid.UUID
    flow_name: str | None = None
    name: str
    flow_version: str | None
    parameters: dict[str, Any]
    tags: list[str]
    parent_flow_run_id: uuid.UUID | None
    parent_task_run_id: uuid.UUID | None
    deployment_id: uuid.UUID | None
    retries: int
    retry_delay_seconds: float
    run_count: int
    state_type: StateType | None
    state_name: str | None
    state_timestamp: datetime.datetime | None
    expected_start_time: datetime.datetime | None
    start_time: datetime.datetime | None
    end_time: datetime.datetime | None
    created: datetime.datetime
    updated: datetime.datetime
    # Runs of deployments (see schemas/deployments.py).
    work_queue_id: uuid.UUID | None = None
    job_variables: dict[str, Any] = Field(default_factory=dict)
    """The run's own job variables, laid over its pool's and deployment's at launch."""
    idempotency_key: str | None = None
    auto_scheduled: bool = False


class OrchestrationStatus(str, enum.Enum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    WAIT = "WAIT"
    ABORT = "ABORT"


class OrchestrationResult(BaseModel):
    """The server's answer to a proposed state.

    ACCEPT: ``state`` is now the run's state. REJECT: the proposal was replaced and
    ``state`` is what the run is now (e.g. AwaitingRetry instead of Failed). WAIT: try
    again after ``delay_seconds``. ABORT: stop; the run cannot make this transition.
    """

    status: OrchestrationStatus
    state: State | None = None
    reason: str | None = None
    delay_seconds: float | None = None


class StateRead(Output):
    id: uuid.UUID
    type: StateType
    name: str
    message: str | None
    timestamp: datetime.datetime
    details: dict[str, Any]
    result_ref: dict[str, Any] | None


# -- task runs, logs --------------------------------------------------------------------
class FlowRunRecord(FlowRunCreate):
    """A flow run its engine created and started itself (a flow called in a process).

    The engine does not wait for the server to start such a run: it ships the record with
    its first batch, ahead of the run's task runs and logs. Recorded as sent (a new run has
    no state for the rules to protect); a repeated record changes nothing.
    """

    id: uuid.UUID
    state: State


class RecordBatch(BaseModel):
    """What the engine's batcher ships: idempotent, ordered per run by ``seq``.

    Flow runs come first: the batch's task runs and logs may belong to them. Read with
    ``from_json`` (see ``model_from_json``).
    """

    model_config = ConfigDict(extra="forbid")

    flow_runs: list[FlowRunRecord] = Field(default_factory=list)
    task_runs: list[TaskRunIn] = Field(default_factory=list)
    task_run_states: list[TaskRunStateIn] = Field(default_factory=list)
    logs: list[LogRecordCreate] = Field(default_factory=list)

    @classmethod
    def from_json(cls, raw: bytes) -> RecordBatch:
        return model_from_json(cls, raw)


class FlowRunResume(Input):
    """``POST /api/flow_runs/{id}/resume``: the input the paused run waits for, if any."""

    run_input: dict[str, Any] | None = None
    """Checked against the JSON schema the pause gave (its ``wait_for_input`` model)."""

    @classmethod
    def from_json(cls, raw: bytes) -> FlowRunResume:
        """The body; an empty one is no input (``POST .../resume`` with nothing)."""
        return model_from_json(cls, raw) if raw.strip() else cls()


class SetState(Input):
    state: State
    force: bool = False
    """Skip the orchestration rules (an operator's override); still recorded."""
    records: RecordBatch | None = None
    """Records to store first, in the same transaction: what the engine had queued when it
    proposed the state (a short flow's whole history then costs one request)."""

    @classmethod
    def from_json(cls, raw: bytes) -> SetState:
        return model_from_json(cls, raw)


M = TypeVar("M", bound=BaseModel)


def model_from_json(model: type[M], raw: bytes) -> M:
    """Validate a JSON body; raises pydantic's ``ValidationError`` naming each field.

    Values are made storable as ``Input`` does, but in the common case pydantic validates
    the JSON bytes directly: a before-validator (or FastAPI's own parsing) would first turn
    a whole record batch into Python objects, ~8x slower.
    """
    if not _may_need_cleaning(raw):
        return model.model_validate_json(raw)
    try:
        data = json.loads(raw)
    except ValueError:
        return model.model_validate_json(raw)  # the parser's error, by position
    return model.model_validate(_made_storable(data))


# What ``_made_storable`` would change can only hide behind these bytes in valid JSON
# (NUL and surrogates must be escaped there). A match only costs the slower path.
_SUSPECT = re.compile(rb"\\u0000|\\u[dD][89abcdefABCDEF]|NaN|Infinity|\x00")


def _may_need_cleaning(raw: bytes) -> bool:
    # A substring test is a fast scan; the regex, trying four patterns at every byte of a
    # record batch, cost a sixth of reading it. So the regex only confirms a hit.
    if all(marker not in raw for marker in _MARKERS):
        return False
    return _SUSPECT.search(raw) is not None


_MARKERS = (b"\\u", b"NaN", b"Infinity", b"\x00")


class RecordBatchResult(BaseModel):
    flow_runs: int = 0
    task_runs: int
    task_run_states: int
    logs: int


class TaskRunRead(Output):
    id: uuid.UUID
    flow_run_id: uuid.UUID | None
    name: str
    task_key: str
    task_version: str | None
    dynamic_key: str
    map_index: int | None
    tags: list[str]
    task_inputs: list[dict[str, Any]]
    cache_key: str | None
    state_type: StateType | None
    state_name: str | None
    state_timestamp: datetime.datetime | None
    run_count: int
    start_time: datetime.datetime | None
    end_time: datetime.datetime | None
    created: datetime.datetime


class TaskRunStateRead(Output):
    seq: int
    type: StateType
    name: str
    message: str | None = None
    timestamp: datetime.datetime
    details: dict[str, Any] = Field(default_factory=dict)
    result_ref: dict[str, Any] | None = None


class LogRead(Output):
    id: int
    flow_run_id: uuid.UUID | None
    task_run_id: uuid.UUID | None
    name: str
    level: int
    message: str
    timestamp: datetime.datetime


# -- filters ----------------------------------------------------------------------------
class FlowRunSort(str, enum.Enum):
    CREATED_DESC = "CREATED_DESC"
    CREATED_ASC = "CREATED_ASC"
    EXPECTED_START_TIME_DESC = "EXPECTED_START_TIME_DESC"
    NAME_ASC = "NAME_ASC"


class FlowRunFilter(Input):
    flow_id: list[uuid.UUID] | None = None
    flow_name: list[str] | None = None
    state_type: list[StateType] | None = None
    state_name: list[str] | None = None
    tags_all: list[str] | None = None
    """Runs carrying every one of these tags."""
    deployment_id: list[uuid.UUID] | None = None
    parent_flow_run_id: uuid.UUID | None = None
    created_after: AwareDatetime | None = None
    created_before: AwareDatetime | None = None
    sort: FlowRunSort = FlowRunSort.CREATED_DESC
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class TaskRunFilter(Input):
    flow_run_id: list[uuid.UUID] | None = None
    state_type: list[StateType] | None = None
    name_like: str | None = Field(default=None, max_length=255)
    """Task runs whose name contains this text, ignoring case (no wildcards)."""
    created_after: AwareDatetime | None = None
    created_before: AwareDatetime | None = None
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class LogFilter(Input):
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
    level_ge: int = Field(default=0, ge=0, le=100)
    after_id: int | None = Field(default=None, ge=0, le=2**63 - 1)
    """Only logs newer than this id: how a follower tails new lines."""
    limit: int = Field(default=200, ge=1, le=1000)
