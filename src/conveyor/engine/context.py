"""Run contexts: what the code of a running flow or task can ask about where it runs."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.client.recorder import RunRecorder
from conveyor.exceptions import NotInFlowError
from conveyor.settings import Settings

if TYPE_CHECKING:
    from conveyor.engine.flows import Flow
    from conveyor.engine.futures import ConveyorFuture
    from conveyor.engine.results import ResultStore
    from conveyor.engine.serializers import Serializer
    from conveyor.engine.tasks import Task
    from conveyor.schemas.runs import FlowRun, TaskRun
    from conveyor.schemas.states import State
    from conveyor.task_runners.base import TaskRunner


@dataclass
class RunEnvironment:
    """What a task needs to run anywhere, including a worker process: small and picklable."""

    settings: Settings
    flow_run_id: uuid.UUID | None
    flow_run_name: str | None
    flow_name: str | None
    flow_parameters: dict[str, Any]
    persist_result: bool | None
    result_storage: str | None
    result_serializer: str | Serializer | None
    log_prints: bool
    tags: frozenset[str]


@dataclass
class FlowRunContext:
    flow: Flow[..., Any]
    flow_run: FlowRun
    environment: RunEnvironment
    task_runner: TaskRunner
    recorder: RunRecorder
    run_count: int = 1
    """Which attempt of the flow run this is: 1, then 2 on the first retry, ..."""
    futures: list[ConveyorFuture[Any]] = field(default_factory=list)
    cancel_requested: threading.Event | None = None
    """Set when the run (or the top-level run it belongs to) is being cancelled."""
    ended: State | None = None
    """The final state the server already gave the run while it ran (its pause expired, or
    it was cancelled while paused): the run's outcome, whatever its function does next."""
    _task_counters: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_dynamic_key(self, task_key: str) -> int:
        with self._lock:
            n = self._task_counters.get(task_key, 0)
            self._task_counters[task_key] = n + 1
            return n


@dataclass
class TaskRunContext:
    task: Task[..., Any]
    task_run: TaskRun
    environment: RunEnvironment
    recorder: RunRecorder
    run_count: int
    result_store: ResultStore | None = None


flow_run_context: ContextVar[FlowRunContext | None] = ContextVar("conveyor_flow_run", default=None)
task_run_context: ContextVar[TaskRunContext | None] = ContextVar("conveyor_task_run", default=None)
_tags: ContextVar[frozenset[str]] = ContextVar("conveyor_tags", default=frozenset())
_log_prints: ContextVar[bool] = ContextVar("conveyor_log_prints", default=False)


def get_run_context() -> TaskRunContext | FlowRunContext:
    """The innermost running task or flow; raises outside of both."""
    task_ctx = task_run_context.get()
    if task_ctx is not None:
        return task_ctx
    flow_ctx = flow_run_context.get()
    if flow_ctx is not None:
        return flow_ctx
    raise NotInFlowError("get_run_context() was called outside of a flow or task run.")


def current_tags() -> frozenset[str]:
    return _tags.get()


@contextlib.contextmanager
def tags(*names: str) -> Iterator[frozenset[str]]:
    """Add tags to every flow run and task run created inside the block."""
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"tags must be strings, got {name!r}")
    new = _tags.get() | frozenset(names)
    token = _tags.set(new)
    try:
        yield new
    finally:
        _tags.reset(token)
