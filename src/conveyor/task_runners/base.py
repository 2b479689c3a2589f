"""The one interface every task runner implements."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from conveyor.client.null import NullRecorder
from conveyor.exceptions import ConfigurationError

if TYPE_CHECKING:
    from conveyor.client.recorder import RunRecorder
    from conveyor.engine.futures import ConveyorFuture
    from conveyor.engine.task_call import TaskCall

Self = TypeVar("Self", bound="TaskRunner")


def check_max_workers(max_workers: Any, owner: str) -> None:
    if max_workers is not None and (
        isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
    ):
        raise ConfigurationError(
            f"{owner}: max_workers must be a whole number >= 1, got {max_workers!r}."
        )


class TaskRunner(abc.ABC):
    """Runs a flow's submitted task runs and hands back a future for each.

    A runner object is configuration: each flow run starts a fresh ``duplicate()`` of it
    (so one flow object can run many times, also concurrently), enters it, submits task
    calls, and exits it, which waits for everything submitted.
    """

    def __init__(self) -> None:
        self.recorder: RunRecorder = NullRecorder()
        self._started = False

    @property
    def name(self) -> str:
        return type(self).__name__

    @abc.abstractmethod
    def duplicate(self: Self) -> Self:
        """A new, unstarted runner with the same configuration."""

    def start(self, recorder: RunRecorder) -> None:
        self.recorder = recorder
        self._started = True

    def shutdown(self, wait: bool = True) -> None:
        """Release resources; with ``wait`` first let everything submitted finish, else
        cancel what has not started (after a flow timeout or crash)."""
        self._started = False

    @abc.abstractmethod
    def submit(self, call: TaskCall) -> ConveyorFuture[Any]:
        """Start one task run and return its future at once."""

    def __enter__(self: Self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(wait=exc is None)

    def __repr__(self) -> str:
        return f"{self.name}()"

    def _describe(self) -> dict[str, Any]:
        return {}
