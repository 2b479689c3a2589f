"""Runs each submitted task to completion before ``submit`` returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.engine.futures import ConveyorFuture, completed_future
from conveyor.task_runners.base import TaskRunner

if TYPE_CHECKING:
    from conveyor.engine.task_call import TaskCall


class SequentialTaskRunner(TaskRunner):
    """One task at a time, in submission order, in the flow's own thread."""

    def duplicate(self) -> SequentialTaskRunner:
        return SequentialTaskRunner()

    def submit(self, call: TaskCall) -> ConveyorFuture[Any]:
        if call.task.isasync:
            from conveyor.engine import runtime

            state = runtime.run_coro_sync(call.run_async(self.recorder))
        else:
            state = call.run_sync(self.recorder)
        return completed_future(call.task_run_id, call.task.name, state)
