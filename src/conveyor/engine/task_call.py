"""What a task runner ships: one task run's call, and how its upstream futures travel."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from conveyor.client.recorder import RunRecorder
from conveyor.engine.context import RunEnvironment
from conveyor.engine.effects import perform_async, perform_sync
from conveyor.engine.futures import ConveyorFuture
from conveyor.engine.inputs import UpstreamPlaceholder, iter_leaves, walk
from conveyor.engine.task_engine import TaskRunEngine, task_run_steps
from conveyor.schemas.states import State

if TYPE_CHECKING:
    from conveyor.engine.tasks import Task


@dataclass(slots=True)
class TaskCall:
    """Everything needed to run one task run anywhere: what task runners ship."""

    task: Task[..., Any]
    parameters: dict[str, Any]
    wait_for: list[Any] | None
    environment: RunEnvironment
    task_run_id: uuid.UUID
    dynamic_key: int
    map_index: int | None
    tags: frozenset[str]

    def upstream_futures(self) -> list[ConveyorFuture[Any]]:
        found = [leaf for leaf, _ in iter_leaves(self.parameters) if type(leaf) is ConveyorFuture]
        if self.wait_for:
            found.extend(f for f, _ in iter_leaves(self.wait_for) if type(f) is ConveyorFuture)
        return found

    def with_upstream_states(self) -> TaskCall:
        """A copy whose upstream futures (all done) are replaced by their final states,
        for shipping to another process."""

        def to_state(value: Any, allowed: bool) -> Any:
            if type(value) is ConveyorFuture:
                value.mark_observed()
                return value.final_state()
            return value

        return self._rewritten(to_state)

    def with_placeholders(self) -> tuple[TaskCall, list[ConveyorFuture[Any]]]:
        """A copy whose upstream futures are numbered placeholders, and the futures, so
        a cluster can resolve dependencies itself (Dask)."""
        upstream: list[ConveyorFuture[Any]] = []

        def to_placeholder(value: Any, allowed: bool) -> Any:
            if type(value) is ConveyorFuture:
                value.mark_observed()
                upstream.append(value)
                return UpstreamPlaceholder(len(upstream) - 1)
            return value

        return self._rewritten(to_placeholder), upstream

    def with_placeholders_filled(self, states: dict[int, State]) -> TaskCall:
        def fill(value: Any, allowed: bool) -> Any:
            if type(value) is UpstreamPlaceholder:
                return states[value.index]
            return value

        return self._rewritten(fill)

    def _rewritten(self, visit: Any) -> TaskCall:
        parameters = {k: walk(v, visit, keep_wrappers=True) for k, v in self.parameters.items()}
        wait_for = walk(self.wait_for, visit, keep_wrappers=True) if self.wait_for else None
        return replace(self, parameters=parameters, wait_for=wait_for)

    def run_sync(self, recorder: RunRecorder) -> State:
        return perform_sync(task_run_steps(TaskRunEngine(self, recorder)))

    async def run_async(self, recorder: RunRecorder) -> State:
        return await perform_async(task_run_steps(TaskRunEngine(self, recorder)))
