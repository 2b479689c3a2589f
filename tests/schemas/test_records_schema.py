"""The record wire format: the same fields as the engine's records, and nothing lost."""

from __future__ import annotations

import dataclasses
import datetime
import typing
import uuid

from conveyor.schemas.api import RecordBatch
from conveyor.schemas.records import (
    IMPLIED_DETAILS,
    StateDetailsIn,
    StateEntryIn,
    StateIn,
    StateTypeName,
    TaskRunIn,
    TaskRunInputIn,
    TaskRunStateIn,
    encode_records,
    encode_state,
    encode_task_run,
    stored_details,
)
from conveyor.schemas.results import ResultRef
from conveyor.schemas.runs import TaskRun, TaskRunInput, TaskRunStateRecord
from conveyor.schemas.states import Completed, Failed, Pending, State, StateDetails, StateType

NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.timezone.utc)


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_the_wire_types_carry_every_field_of_the_engine_records() -> None:
    # A field added to a dataclass must be added to its wire type too, or it is dropped.
    assert set(TaskRunIn.__annotations__) == _fields(TaskRun) | {"states"}
    assert set(TaskRunInputIn.__annotations__) == _fields(TaskRunInput)
    assert set(TaskRunStateIn.__annotations__) == _fields(TaskRunStateRecord)
    assert set(StateIn.__annotations__) == _fields(State) - {"data"}
    assert set(StateEntryIn.__annotations__) == _fields(State) - {"data"} | {"seq"}
    assert set(StateDetailsIn.__annotations__) == _fields(StateDetails)
    assert set(typing.get_args(StateTypeName)) == {t.value for t in StateType}


def _round_trip(run: TaskRun, *records: TaskRunStateRecord) -> RecordBatch:
    body = RecordBatch.model_construct(
        task_runs=[encode_task_run(run)],
        task_run_states=[encode_state(r) for r in records],
        logs=[],
    )
    return RecordBatch.from_json(body.model_dump_json().encode())


def _instant(value: str | datetime.datetime) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_a_plain_task_run_travels_small_and_arrives_whole() -> None:
    run = TaskRun(id=uuid.uuid4(), name="t-0", task_key="t", dynamic_key="0", created=NOW)
    pending = Pending()
    pending.timestamp = NOW.replace(microsecond=123456)  # a time the engine could stamp
    pending.state_details.task_run_id = run.id
    record = TaskRunStateRecord(task_run_id=run.id, seq=1, state=pending)
    encoded = encode_state(record)
    # Implied and default values stay home.
    assert set(encoded["state"]) == {"type", "timestamp"}
    batch = _round_trip(run, record)
    assert batch.task_runs == [
        {"id": run.id, "name": "t-0", "task_key": "t", "dynamic_key": "0", "created": NOW}
    ]
    state = batch.task_run_states[0]["state"]
    # The engine's timestamps stay strings on arrival (the server never re-formats
    # them); NOW, with no fraction of a second, is read as a datetime.
    assert state["timestamp"] == "2026-11-21T12:00:00.123456Z"
    assert (state["type"], _instant(state["timestamp"])) == (pending.type, pending.timestamp)


def test_everything_set_on_a_record_arrives() -> None:
    upstream = uuid.uuid4()
    run = TaskRun(
        id=uuid.uuid4(),
        name="load-3",
        task_key="etl.load",
        dynamic_key="3",
        created=NOW,
        flow_run_id=uuid.uuid4(),
        task_version="2",
        tags=["db"],
        map_index=3,
        task_inputs=[TaskRunInput(task_run_id=upstream, parameter="rows")],
        cache_key="abc",
    )
    failed = Failed(message="boom", name="Exploded")
    failed.state_details.cache_key = "abc"
    failed.state_details.run_count = 2
    failed.result_ref = ResultRef(storage="/tmp/results", key="k", serializer="pickle")
    batch = _round_trip(run, TaskRunStateRecord(task_run_id=run.id, seq=4, state=failed))
    sent = batch.task_runs[0]
    assert sent.get("tags") == ["db"] and sent.get("map_index") == 3
    assert sent.get("task_inputs") == [{"task_run_id": upstream, "parameter": "rows"}]
    assert (sent.get("task_version"), sent.get("cache_key")) == ("2", "abc")
    state = batch.task_run_states[0]["state"]
    assert (state.get("name"), state.get("message")) == ("Exploded", "boom")
    assert state.get("result_ref") == failed.result_ref
    assert stored_details(state.get("state_details")) == {"cache_key": "abc", "run_count": 2}


def test_stored_details_leave_out_what_the_record_implies() -> None:
    ids = {name: uuid.uuid4() for name in IMPLIED_DETAILS}
    details: StateDetailsIn = {**ids, "scheduled_time": NOW, "transition_id": None}  # type: ignore[typeddict-item]
    assert stored_details(details) == {"scheduled_time": NOW.isoformat()}
    assert stored_details(None) == {}


def test_a_renamed_default_state_keeps_its_name() -> None:
    run = TaskRun(id=uuid.uuid4(), name="t-0", task_key="t", dynamic_key="0", created=NOW)
    cached = Completed(name="Cached")
    encoded = encode_state(TaskRunStateRecord(task_run_id=run.id, seq=2, state=cached))
    assert encoded["state"].get("name") == "Cached"


def _state(run: TaskRun, seq: int, state: State) -> TaskRunStateRecord:
    state.state_details.task_run_id = run.id
    return TaskRunStateRecord(task_run_id=run.id, seq=seq, state=state)


def test_states_travel_inside_their_run_when_it_is_in_the_batch() -> None:
    shipped = TaskRun(id=uuid.uuid4(), name="a-0", task_key="a", dynamic_key="0", created=NOW)
    fresh = TaskRun(id=uuid.uuid4(), name="b-0", task_key="b", dynamic_key="0", created=NOW)
    records = [
        _state(fresh, 1, Pending()),
        _state(shipped, 3, Completed()),  # its run went in an earlier batch
        _state(fresh, 2, Completed(name="Cached")),
    ]
    runs, alone = encode_records([fresh], records)
    assert [(e["seq"], e["type"], e.get("name")) for e in runs[0].get("states", [])] == [
        (1, "PENDING", None),
        (2, "COMPLETED", "Cached"),
    ]
    # Plain strings, not the enum: a member costs the encoder several times as much.
    assert {type(e["type"]) for e in runs[0].get("states", [])} == {str}
    assert [(r["task_run_id"], r["seq"]) for r in alone] == [(shipped.id, 3)]
    batch = RecordBatch.model_construct(task_runs=runs, task_run_states=alone, logs=[])
    arrived = RecordBatch.from_json(batch.model_dump_json().encode())
    assert [e["seq"] for e in arrived.task_runs[0].get("states", [])] == [1, 2]
    assert arrived.task_run_states[0]["state"]["type"] == "COMPLETED"
