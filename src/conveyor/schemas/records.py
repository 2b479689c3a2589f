"""How task runs and their states travel in a record batch (``POST /api/records``).

The engine keeps a task run and each of its states as slotted dataclasses
(``schemas.runs``, ``schemas.states``). On the wire they are plain JSON objects that leave
out whatever is empty or implied: a trivial task's three states cost ~60 bytes each, not
~330, and the server validates them into plain dicts (``TypedDict``) instead of building
objects, about five times cheaper per record. Bulk recording is the server's hottest
path, so this is what decides how many task runs per second it can take. A task run's
states travel inside its record (``states``) when they go in the same batch, as a short
task's all do; a state whose run went earlier travels on its own (``TaskRunStateIn``).

Omitted means: ``name`` -> the type's default name; ``timestamp`` -> when the server
received it; ``state_details`` -> none; ``flow_run_id`` and ``task_run_id`` inside
details are implied by the record and never stored. ``encode_records`` makes these
objects from the engine's records; a test pins that the fields here are the fields
there.
"""

from __future__ import annotations

import dataclasses
import datetime
import operator
import uuid
from collections.abc import Iterable
from typing import Annotated, Any, Literal, cast

from pydantic import AwareDatetime, ConfigDict, Field, GetPydanticSchema, with_config
from pydantic_core import core_schema
from typing_extensions import NotRequired, TypedDict

from conveyor.schemas.results import ResultRef
from conveyor.schemas.runs import TaskRun, TaskRunStateRecord
from conveyor.schemas.states import State, StateDetails, default_state_name

_FORBID_EXTRA = ConfigDict(extra="forbid")
Int32 = Annotated[int, Field(ge=0, le=2**31 - 1)]

# How pydantic writes an aware UTC datetime (the engine's every timestamp), on a day every
# month has: any string this matches is a valid instant as it stands, so it stays a string
# and the server never parses it into a datetime only to format it back (which cost more
# than the rest of recording a state). Anything else (another offset, no fraction, the
# 29th to 31st) is parsed as a datetime.
_ENGINE_UTC_TIME = (
    r"^[1-9]\d{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])"
    r"T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{6}(?:Z|\+00:00)$"
)
WireTime = Annotated[
    str | datetime.datetime,
    # One error at the field, as for any timestamp, not one per way of reading it.
    GetPydanticSchema(
        lambda _, __: core_schema.union_schema(
            [
                core_schema.str_schema(pattern=_ENGINE_UTC_TIME),
                core_schema.datetime_schema(tz_constraint="aware"),
            ],
            mode="left_to_right",
            custom_error_type="timestamp",
            custom_error_message="Input should be an ISO 8601 date and time with a timezone",
        )
    ),
]


@with_config(_FORBID_EXTRA)
class StateDetailsIn(TypedDict, total=False):
    flow_run_id: uuid.UUID | None
    task_run_id: uuid.UUID | None
    scheduled_time: AwareDatetime | None
    cache_key: str | None
    cache_expiration: AwareDatetime | None
    run_count: int | None
    transition_id: uuid.UUID | None
    # Pauses are flow-run states, never a task run's; here so the wire type stays whole.
    pause_timeout: AwareDatetime | None
    pause_reschedule: bool | None
    pause_key: str | None
    run_input_schema: dict[str, Any] | None
    run_input: dict[str, Any] | None


StateTypeName = Literal[
    "SCHEDULED",
    "PENDING",
    "RUNNING",
    "PAUSED",
    "CANCELLING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "CRASHED",
]
"""A ``StateType``'s value. On the wire a state's type is this plain string, not the enum:
encoding an enum member cost more than the rest of a task run's record together."""


@with_config(_FORBID_EXTRA)
class StateIn(TypedDict):
    type: StateTypeName
    name: NotRequired[str | None]
    message: NotRequired[str | None]
    timestamp: NotRequired[WireTime]
    state_details: NotRequired[StateDetailsIn]
    result_ref: NotRequired[ResultRef | None]


@with_config(_FORBID_EXTRA)
class TaskRunStateIn(TypedDict):
    """A state of a task run recorded by an earlier batch (a long task's later states)."""

    task_run_id: uuid.UUID
    seq: Int32
    state: StateIn


@with_config(_FORBID_EXTRA)
class StateEntryIn(StateIn):
    """A state inline in its task run's record (``TaskRunIn.states``)."""

    seq: Int32


@with_config(_FORBID_EXTRA)
class TaskRunInputIn(TypedDict):
    task_run_id: uuid.UUID
    parameter: NotRequired[str | None]


@with_config(_FORBID_EXTRA)
class TaskRunIn(TypedDict):
    # The bounds are the server's column sizes: a record that breaks them is refused by name.
    id: uuid.UUID
    name: Annotated[str, Field(max_length=255)]
    task_key: Annotated[str, Field(max_length=1000)]
    dynamic_key: Annotated[str, Field(max_length=255)]
    created: WireTime
    flow_run_id: NotRequired[uuid.UUID | None]
    task_version: NotRequired[Annotated[str | None, Field(max_length=255)]]
    tags: NotRequired[list[str]]
    map_index: NotRequired[Int32 | None]
    task_inputs: NotRequired[list[TaskRunInputIn]]
    cache_key: NotRequired[Annotated[str | None, Field(max_length=1000)]]
    # The run's states that travel with it: a short task's whole history in one record.
    states: NotRequired[list[StateEntryIn]]


# State details the record itself implies; never sent, never stored.
IMPLIED_DETAILS = frozenset({"flow_run_id", "task_run_id"})
# Details only a flow run's states have (pauses): a task run's never carry them, so the
# encoder of task-run states (a hot path) does not look.
FLOW_RUN_ONLY_DETAILS = frozenset(
    {"pause_timeout", "pause_reschedule", "pause_key", "run_input_schema", "run_input"}
)
_SENT_DETAILS = tuple(
    f.name
    for f in dataclasses.fields(StateDetails)
    if f.name not in IMPLIED_DETAILS | FLOW_RUN_ONLY_DETAILS
)
_sent_details = operator.attrgetter(*_SENT_DETAILS)


def encode_task_run(run: TaskRun) -> TaskRunIn:
    out: TaskRunIn = {
        "id": run.id,
        "name": run.name,
        "task_key": run.task_key,
        "dynamic_key": run.dynamic_key,
        "created": run.created,
    }
    if run.flow_run_id is not None:
        out["flow_run_id"] = run.flow_run_id
    if run.task_version is not None:
        out["task_version"] = run.task_version
    if run.tags:
        out["tags"] = run.tags
    if run.map_index is not None:
        out["map_index"] = run.map_index
    if run.task_inputs:
        out["task_inputs"] = [
            {"task_run_id": i.task_run_id, "parameter": i.parameter} for i in run.task_inputs
        ]
    if run.cache_key is not None:
        out["cache_key"] = run.cache_key
    return out


def encode_records(
    runs: Iterable[TaskRun], records: Iterable[TaskRunStateRecord]
) -> tuple[list[TaskRunIn], list[TaskRunStateIn]]:
    """Task runs and states for a batch: a state travels inside its run's record when the
    run is in the batch too (most are: a short task's run and all its states), and on its
    own otherwise."""
    out: list[TaskRunIn] = []
    # Keyed by the ids' ints: a UUID's hash is a Python method, an int's is not.
    by_id: dict[int, TaskRunIn] = {}
    for run in runs:
        wire = by_id[run.id.int] = encode_task_run(run)
        out.append(wire)
    alone: list[TaskRunStateIn] = []
    for record in records:
        owner = by_id.get(record.task_run_id.int)
        if owner is None:
            alone.append(encode_state(record))
            continue
        entry = cast(StateEntryIn, encode_wire_state(record.state))
        entry["seq"] = record.seq
        if "states" in owner:
            owner["states"].append(entry)
        else:
            owner["states"] = [entry]
    return out, alone


def encode_state(record: TaskRunStateRecord) -> TaskRunStateIn:
    return {
        "task_run_id": record.task_run_id,
        "seq": record.seq,
        "state": encode_wire_state(record.state),
    }


def encode_wire_state(state: State) -> StateIn:
    wire: StateIn = {"type": state.type._value_, "timestamp": state.timestamp}
    if state.name != default_state_name(state.type):
        wire["name"] = state.name
    if state.message is not None:
        wire["message"] = state.message
    values = _sent_details(state.state_details)  # one call: most states have none set
    if values.count(None) != len(_SENT_DETAILS):
        details = {name: v for name, v in zip(_SENT_DETAILS, values, strict=True) if v is not None}
        wire["state_details"] = cast(StateDetailsIn, details)
    if state.result_ref is not None:
        wire["result_ref"] = state.result_ref
    return wire


def stored_details(details: StateDetailsIn | None) -> dict[str, Any]:
    """State details as a task-run state stores them: set, non-implied fields only, ids
    and times as strings."""
    if not details:
        return {}  # most states: nothing to store, and no generator to make
    items = details.items()
    return jsonable_details((name, value) for name, value in items if name not in IMPLIED_DETAILS)


def jsonable_details(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Details as stored (flow-run and task-run states alike): the fields that are set,
    with ids and times as strings."""
    out: dict[str, Any] = {}
    for name, value in items:
        if value is None:
            continue
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, datetime.datetime):
            value = value.isoformat()
        out[name] = value
    return out
