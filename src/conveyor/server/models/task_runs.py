"""Task runs: recorded in batches from the engine (``models.records``), never orchestrated
here.

A task run's state history lives in its own row (``states``, a JSON list ordered by
``seq``): a new run arrives with its states in one insert, one row instead of four.
Recording is idempotent and ordered per run: a state whose ``seq`` is already in the
history is not added again, so a repeated batch changes nothing; and the run's current
state is always the one with the highest ``seq``, so a late batch cannot roll it back.

Nearly every batch holds new runs, with the states they had when it left (the rest of
a run's states follow on their own, in the next batch): on SQLite those rows go from the
wire records straight to the driver (``_insert_new_on_sqlite``), the server's hottest
loop, and states on their own are merged into stored rows. A batch that repeats a run
takes the general path.
"""

from __future__ import annotations

import datetime
import itertools
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from conveyor.schemas.api import TaskRunFilter
from conveyor.schemas.records import (
    StateEntryIn,
    StateIn,
    TaskRunIn,
    TaskRunStateIn,
    stored_details,
)
from conveyor.schemas.states import TERMINAL_STATE_TYPES, StateType, default_state_name
from conveyor.server.database import orm
from conveyor.server.models.common import (
    insert_returning_new_keys,
    sqlite_json,
    sqlite_timestamp,
    sqlite_uuid,
)

# Existing runs are read back (to merge late states) this many at a time.
_IDS_PER_QUERY = 500
_TERMINAL = frozenset(t.value for t in TERMINAL_STATE_TYPES)
_DEFAULT_NAMES = {t.value: default_state_name(t) for t in StateType}
_UTC = datetime.timezone.utc

Entry = dict[str, Any]
"""One state in a task run's ``states`` history, as stored (JSON). Its ``timestamp`` is a
``Moment``, so entries compare by time as strings."""
Moment = str
"""An instant as ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``: one fixed-width form, so that
ordering the strings orders the instants, and the database columns (``Timestamp``,
``sqlite_timestamp``) take it as it is. The engine's own timestamps arrive in this form
(see ``schemas.records.WireTime``) and are never parsed: formatting a datetime back
costs more than the rest of recording its state."""


def moment(value: str | datetime.datetime) -> Moment:
    """A wire timestamp (a string in the engine's form, or any aware datetime) as stored."""
    if isinstance(value, str):
        return value if value.endswith("+00:00") else value[:26] + "+00:00"  # ...Z
    return value.astimezone(_UTC).isoformat(timespec="microseconds")


def _stored_moment(value: str) -> Moment:
    """An entry's timestamp read back: older rows kept ``datetime.isoformat()``."""
    if len(value) == 32:
        return value
    return moment(datetime.datetime.fromisoformat(value))


def record_task_runs(
    session: Session,
    task_runs: Sequence[TaskRunIn],
    states: Sequence[TaskRunStateIn],
    received: Moment,
) -> tuple[int, int]:
    """Record task runs and states in a handful of statements, however many there are;
    returns how many runs and states were new.

    New task runs are inserted with their whole history and current state already
    worked out; only runs recorded by an earlier batch are read back and updated.
    """
    if task_runs and session.get_bind().dialect.name == "sqlite":
        added = _insert_new_on_sqlite(session, task_runs, received)
        if added is not None:
            # States on their own are later states of runs an earlier batch recorded.
            added += _merge(session, _histories((), states, received))
            return len(task_runs), added
    histories = _histories(task_runs, states, received)
    rows = [_task_run_values(run, histories.get(run["id"].int)) for run in task_runs]
    new_runs = {key[0].int for key in insert_returning_new_keys(session, orm.TaskRun, rows)}
    added = sum(len(histories.get(run_id, ())) for run_id in new_runs)
    # States of runs recorded earlier (or of runs this batch repeats) are merged in.
    added += _merge(session, {k: v for k, v in histories.items() if k not in new_runs})
    return len(new_runs), added


def _histories(
    runs: Iterable[TaskRunIn], records: Iterable[TaskRunStateIn], received: Moment
) -> dict[int, dict[int, Entry]]:
    """The batch's states, inline in their runs' records or on their own, as stored
    entries by run (the id's int: a UUID's hash is a Python method) and seq (a repeated
    seq: the first)."""
    out: dict[int, dict[int, Entry]] = {}
    for run in runs:
        if inline := run.get("states"):
            entries = out.setdefault(run["id"].int, {})
            for state in inline:
                if state["seq"] not in entries:
                    entries[state["seq"]] = _entry(state["seq"], state, received)
    for record in records:
        entries = out.setdefault(record["task_run_id"].int, {})
        if record["seq"] not in entries:
            entries[record["seq"]] = _entry(record["seq"], record["state"], received)
    return out


def _entry(seq: int, state: StateIn, received: Moment) -> Entry:
    type_ = state["type"]
    timestamp = state.get("timestamp")
    entry: Entry = {
        "seq": seq,
        "type": type_,
        "name": _DEFAULT_NAMES[type_],
        "timestamp": received if timestamp is None else moment(timestamp),
    }
    if len(state) == 1 + (timestamp is not None) + ("seq" in state):
        return entry  # type, timestamp and (inline) seq: most states say nothing more
    if name := state.get("name"):
        # Bounded like a flow run state's name; a user may name states freely.
        entry["name"] = name[:50]
    if (message := state.get("message")) is not None:
        entry["message"] = message
    if details := stored_details(state.get("state_details")):
        entry["details"] = details
    if (result_ref := state.get("result_ref")) is not None:
        entry["result_ref"] = result_ref.model_dump(mode="json")
    return entry


def _current(history: list[Entry]) -> dict[str, Any]:
    """The columns that summarise ``history`` (ordered by seq): its latest state, how
    often it ran, when it first started and when it last ended."""
    runs = 0
    started: Moment | None = None
    ended: Moment | None = None
    for entry in history:
        type_ = entry["type"]
        if type_ == "RUNNING":
            runs += 1
            at = entry["timestamp"]
            if started is None or at < started:
                started = at
        elif type_ in _TERMINAL:
            at = entry["timestamp"]
            if ended is None or at > ended:
                ended = at
    latest = history[-1] if history else None
    return {
        "states": history,
        "state_type": latest["type"] if latest else None,
        "state_name": latest["name"] if latest else None,
        "state_timestamp": latest["timestamp"] if latest else None,
        "state_seq": latest["seq"] if latest else 0,
        "run_count": runs,
        "start_time": started,
        "end_time": ended,
    }


def _task_run_values(run: TaskRunIn, history: dict[int, Entry] | None) -> dict[str, Any]:
    values = {
        "id": run["id"],
        "flow_run_id": run.get("flow_run_id"),
        "name": run["name"],
        "task_key": run["task_key"],
        "task_version": run.get("task_version"),
        "dynamic_key": run["dynamic_key"],
        "map_index": run.get("map_index"),
        "tags": run.get("tags") or [],
        "task_inputs": [
            {"task_run_id": str(i["task_run_id"]), "parameter": i.get("parameter")}
            for i in run.get("task_inputs") or ()
        ],
        "cache_key": run.get("cache_key"),
        "created": moment(run["created"]),
    }
    if not history:
        values.update(_current([]))
        return values
    seqs = list(history)
    if seqs != sorted(seqs):  # (they come in order, but need not)
        seqs.sort()
    values.update(_current([history[seq] for seq in seqs]))
    return values


_COLUMNS = (
    "id",
    "flow_run_id",
    "name",
    "task_key",
    "task_version",
    "dynamic_key",
    "map_index",
    "tags",
    "task_inputs",
    "cache_key",
    "state_type",
    "state_name",
    "state_timestamp",
    "state_seq",
    "run_count",
    "start_time",
    "end_time",
    "created",
    "states",
)
_SQLITE_INSERT = (
    f"INSERT INTO task_runs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)


def _insert_new_on_sqlite(
    session: Session, task_runs: Sequence[TaskRunIn], received: Moment
) -> int | None:
    """The common case, fast: every run is new, with its states. Each row goes
    straight from the wire record to the tuple the driver takes, as ``_task_run_values``
    and ``common.insert_returning_new_keys`` would store it (a test pins that), without
    their dict per row and converter per value. Returns how many states were recorded;
    None, having written nothing, when some run exists already (a repeated batch)."""
    rows = []
    added = 0
    for run in task_runs:
        history = _history(run.get("states") or (), received)
        added += len(history)
        rows.append(_sqlite_row(run, history))
    try:
        with session.begin_nested():
            session.connection().exec_driver_sql(_SQLITE_INSERT, rows)
    except IntegrityError:
        return None
    return added


def _history(states: Iterable[StateEntryIn], received: Moment) -> list[Entry]:
    """Inline states as stored entries, ordered by seq (a repeated seq: the first)."""
    history = [_entry(state["seq"], state, received) for state in states]
    for before, after in itertools.pairwise(history):
        if after["seq"] <= before["seq"]:  # (they come in order, but need not)
            by_seq: dict[int, Entry] = {}
            for entry in history:
                by_seq.setdefault(entry["seq"], entry)
            return [by_seq[seq] for seq in sorted(by_seq)]
    return history


def _sqlite_row(run: TaskRunIn, history: list[Entry]) -> tuple[Any, ...]:
    current = _current(history)
    inputs = run.get("task_inputs")
    return (
        sqlite_uuid(run["id"]),
        sqlite_uuid(run.get("flow_run_id")),
        run["name"],
        run["task_key"],
        run.get("task_version"),
        run["dynamic_key"],
        run.get("map_index"),
        sqlite_json(run.get("tags") or []),
        sqlite_json(
            [
                {"task_run_id": str(i["task_run_id"]), "parameter": i.get("parameter")}
                for i in inputs
            ]
            if inputs
            else []
        ),
        run.get("cache_key"),
        current["state_type"],
        current["state_name"],
        sqlite_timestamp(current["state_timestamp"]),
        current["state_seq"],
        current["run_count"],
        sqlite_timestamp(current["start_time"]),
        sqlite_timestamp(current["end_time"]),
        sqlite_timestamp(moment(run["created"])),
        sqlite_json(history),
    )


def _merge(session: Session, histories: dict[int, dict[int, Entry]]) -> int:
    """Add states to runs already recorded; returns how many were new.

    States of runs the server has never seen are dropped (their run record is missing).
    The rows are locked while merging (``FOR UPDATE`` on PostgreSQL; the write
    transaction itself on SQLite), in id order, so concurrent batches queue, not lose.
    """
    if not histories:
        return 0
    table = cast(Table, orm.TaskRun.__table__)
    updates: list[dict[str, Any]] = []
    added = 0
    ids = sorted(uuid.UUID(int=key) for key in histories)
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = ids[start : start + _IDS_PER_QUERY]
        query = (
            select(table.c.id, table.c.states)
            .where(table.c.id.in_(chunk))
            .order_by(table.c.id)
            .with_for_update()
        )
        for run_id, stored in session.execute(query):
            have = {entry["seq"] for entry in stored}
            new = [e for seq, e in histories[run_id.int].items() if seq not in have]
            if not new:
                continue
            added += len(new)
            kept = [{**e, "timestamp": _stored_moment(e["timestamp"])} for e in stored]
            history = sorted([*kept, *new], key=lambda e: int(e["seq"]))
            current = _current(history)
            updates.append({"b_id": run_id, **{f"b_{k}": v for k, v in current.items()}})
    if updates:
        # (A bind parameter may not share a column's name in an UPDATE's SET clause.)
        columns = [key[2:] for key in updates[0] if key != "b_id"]
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values({column: bindparam(f"b_{column}") for column in columns}),
            updates,
        )
    return added


def read_task_run(session: Session, task_run_id: uuid.UUID) -> orm.TaskRun | None:
    return session.get(orm.TaskRun, task_run_id)


def read_task_run_states(session: Session, task_run_id: uuid.UUID) -> list[Entry] | None:
    """The run's state history ordered by seq; None when there is no such run."""
    query = select(orm.TaskRun.states).where(orm.TaskRun.id == task_run_id)
    history: list[Entry] | None = session.execute(query).scalar_one_or_none()
    return history


def filter_task_runs(session: Session, flt: TaskRunFilter) -> Sequence[orm.TaskRun]:
    run = orm.TaskRun
    query = select(run)
    if flt.flow_run_id:
        query = query.where(run.flow_run_id.in_(flt.flow_run_id))
    if flt.state_type:
        query = query.where(run.state_type.in_([s.value for s in flt.state_type]))
    if flt.name_like:
        # A literal, case-insensitive substring on both backends (LIKE alone is
        # case-sensitive on PostgreSQL only, and "%", "_" and backslash would be patterns).
        query = query.where(run.name.icontains(flt.name_like, autoescape=True))
    if flt.created_after:
        query = query.where(run.created >= flt.created_after)
    if flt.created_before:
        query = query.where(run.created < flt.created_before)
    query = query.order_by(run.created.desc(), run.id).limit(flt.limit).offset(flt.offset)
    return (session.execute(query)).scalars().all()
