"""States: a run's type (what phase it is in) plus a name, a message and details.

A state may carry its result in memory (``data``, never serialized) and a reference to
the persisted result (``result_ref``), so a result can be read back later by anyone who
can reach the result store.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import importlib
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AwareDatetime, Field

from conveyor.schemas.results import ResultRef


class StateType(str, enum.Enum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"

    # The str's own hash, in C: Enum's is a Python method, and states are looked up by
    # type in dicts and sets several times per task run. (Each member's value is its
    # name, so the hash is the one Enum would give.)
    __hash__ = str.__hash__


TERMINAL_STATE_TYPES = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
)

_DEFAULT_NAMES = {
    StateType.SCHEDULED: "Scheduled",
    StateType.PENDING: "Pending",
    StateType.RUNNING: "Running",
    StateType.PAUSED: "Paused",
    StateType.CANCELLING: "Cancelling",
    StateType.COMPLETED: "Completed",
    StateType.FAILED: "Failed",
    StateType.CANCELLED: "Cancelled",
    StateType.CRASHED: "Crashed",
}


def default_state_name(type: StateType) -> str:
    """The name a state of ``type`` gets when it is not given one."""
    return _DEFAULT_NAMES[type]


class _Unset(enum.Enum):
    """Marks a state that holds no in-memory result (distinct from a result of None)."""

    UNSET = "UNSET"


UNSET = _Unset.UNSET


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclasses.dataclass(slots=True, eq=False)
class StateDetails:
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
    # Aware datetimes only: a naive one is ambiguous, and the API refuses it by name.
    scheduled_time: AwareDatetime | None = None
    cache_key: str | None = None
    cache_expiration: AwareDatetime | None = None
    run_count: int | None = None
    transition_id: uuid.UUID | None = None
    # Pauses (a PAUSED state): when the pause expires, whether resuming schedules the run
    # again (a suspension, whose process exited) or wakes its waiting process, the pause's
    # key, and the JSON schema of the input a resume must give (None: no input).
    pause_timeout: AwareDatetime | None = None
    pause_reschedule: bool | None = None
    pause_key: str | None = None
    run_input_schema: dict[str, Any] | None = None
    # The state a resume makes (Resumed) carries the pause's key and the input given.
    run_input: dict[str, Any] | None = None


class MissingResultError(Exception):
    """A state has neither an in-memory result nor a reference to a persisted one."""


# The engine registers how to read a ResultRef back; this package must not import it.
_result_loader: Callable[[ResultRef], Any] | None = None


def register_result_loader(loader: Callable[[ResultRef], Any]) -> None:
    global _result_loader
    _result_loader = loader


@dataclasses.dataclass(slots=True, eq=False, repr=False)
class State:
    """A run's state. A plain slotted dataclass rather than a pydantic model: a flow that
    maps 100,000 tasks keeps 100,000 final states, and this is ~5x lighter. Pydantic
    still validates and serializes it wherever it appears inside an API model."""

    type: StateType
    name: str | None = None
    message: str | None = None
    timestamp: AwareDatetime = dataclasses.field(default_factory=_utcnow)
    state_details: StateDetails = dataclasses.field(default_factory=StateDetails)
    result_ref: ResultRef | None = None
    data: Annotated[Any, Field(exclude=True)] = UNSET
    """The result or exception in memory; never serialized."""

    def __post_init__(self) -> None:
        if self.name is None:
            self.name = _DEFAULT_NAMES[self.type]

    # -- predicates -------------------------------------------------------------------
    def is_scheduled(self) -> bool:
        return self.type is StateType.SCHEDULED

    def is_pending(self) -> bool:
        return self.type is StateType.PENDING

    def is_running(self) -> bool:
        return self.type is StateType.RUNNING

    def is_paused(self) -> bool:
        return self.type is StateType.PAUSED

    def is_cancelling(self) -> bool:
        return self.type is StateType.CANCELLING

    def is_completed(self) -> bool:
        return self.type is StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type is StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type is StateType.CRASHED

    def is_cancelled(self) -> bool:
        return self.type is StateType.CANCELLED

    def is_final(self) -> bool:
        return self.type in TERMINAL_STATE_TYPES

    # -- results ----------------------------------------------------------------------
    def has_data(self) -> bool:
        return self.data is not UNSET

    def result(self, raise_on_failure: bool = True) -> Any:
        """The run's return value, read back from the result store when not in memory.

        For a failed, crashed or cancelled state, raises the run's exception (or a
        ``FailedRunError`` carrying the state's message) unless ``raise_on_failure`` is
        False, in which case the exception is returned.
        """
        if self.type in (StateType.FAILED, StateType.CRASHED, StateType.CANCELLED):
            exc = self.data if isinstance(self.data, BaseException) else None
            if exc is None:
                exc = FailedRunError(self.message or f"Run ended in state {self!r}")
            if raise_on_failure:
                raise exc
            return exc
        if self.data is not UNSET:
            return self.data
        if self.result_ref is not None:
            if _result_loader is None:
                # The engine registers the loader when it loads; a state unpickled in a
                # process that never ran the engine finds it by name (never the server).
                importlib.import_module("conveyor.engine.results")
            assert _result_loader is not None
            value = _result_loader(self.result_ref)
            self.data = value
            return value
        if self.is_final():
            raise MissingResultError(
                f"State {self!r} has no result in memory and no persisted result; "
                "set persist_result=True to read results back later."
            )
        raise MissingResultError(f"State {self!r} is not final and has no result yet.")

    def __repr__(self) -> str:
        parts = []
        if self.message:
            parts.append(repr(self.message))
        if self.name != _DEFAULT_NAMES[self.type]:
            parts.append(f"type={self.type.value}")
        return f"{self.name}({', '.join(parts)})"

    __str__ = __repr__


class FailedRunError(Exception):
    """Raised by ``State.result()`` for a failed run whose exception is not in memory."""


# -- constructors, named as users read them ---------------------------------------------
def _state(type: StateType, name: str | None, message: str | None, **kw: Any) -> State:
    return State(type=type, name=name, message=message, **kw)


def Scheduled(
    scheduled_time: datetime.datetime | None = None,
    name: str | None = None,
    message: str | None = None,
) -> State:
    details = StateDetails(scheduled_time=scheduled_time or _utcnow())
    return _state(StateType.SCHEDULED, name, message, state_details=details)


def AwaitingRetry(
    scheduled_time: datetime.datetime | None = None, message: str | None = None
) -> State:
    return Scheduled(scheduled_time, name="AwaitingRetry", message=message)


def Late(scheduled_time: datetime.datetime | None = None, message: str | None = None) -> State:
    return Scheduled(scheduled_time, name="Late", message=message)


def Pending(name: str | None = None, message: str | None = None) -> State:
    return _state(StateType.PENDING, name, message)


def Running(name: str | None = None, message: str | None = None) -> State:
    return _state(StateType.RUNNING, name, message)


def Retrying(message: str | None = None) -> State:
    return _state(StateType.RUNNING, "Retrying", message)


def Paused(name: str | None = None, message: str | None = None) -> State:
    return _state(StateType.PAUSED, name, message)


def Suspended(message: str | None = None) -> State:
    return _state(StateType.PAUSED, "Suspended", message)


def Cancelling(message: str | None = None) -> State:
    return _state(StateType.CANCELLING, None, message)


def Completed(data: Any = UNSET, name: str | None = None, message: str | None = None) -> State:
    return _state(StateType.COMPLETED, name, message, data=data)


def Cached(data: Any = UNSET, message: str | None = None) -> State:
    return _state(StateType.COMPLETED, "Cached", message, data=data)


def Failed(data: Any = UNSET, name: str | None = None, message: str | None = None) -> State:
    return _state(StateType.FAILED, name, message, data=data)


def TimedOut(data: Any = UNSET, message: str | None = None) -> State:
    return _state(StateType.FAILED, "TimedOut", message, data=data)


def Crashed(data: Any = UNSET, message: str | None = None) -> State:
    return _state(StateType.CRASHED, None, message, data=data)


def Cancelled(data: Any = UNSET, message: str | None = None) -> State:
    return _state(StateType.CANCELLED, None, message, data=data)
