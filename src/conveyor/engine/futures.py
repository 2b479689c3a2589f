"""Futures for submitted task runs, and waiting on many of them."""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from conveyor.schemas.states import Cancelled, Crashed, Pending, State


class ConveyorFuture:
    """The eventual final state of a submitted task run.

    Every runner hands back one of these. The underlying future resolves to a final
    ``State`` and never raises for a task's own failure; a runner failure (a worker that
    died, a payload that could not be shipped) becomes a Crashed state.
    """

    __slots__ = ("__weakref__", "_future", "_observed", "native", "task_name", "task_run_id")

    def __init__(
        self,
        task_run_id: uuid.UUID,
        task_name: str,
        future: concurrent.futures.Future[State],
        native: Any = None,
    ) -> None:
        self.task_run_id = task_run_id
        self.task_name = task_name
        self._future = future
        self._observed = False
        self.native = native
        """The runner's own handle (a Dask future), used to keep data on the cluster."""

    def done(self) -> bool:
        return self._future.done()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the task run is final, or ``timeout`` seconds pass."""
        concurrent.futures.wait([self._future], timeout=timeout)

    @property
    def state(self) -> State:
        """The final state if the run is done, else a Pending placeholder."""
        self._observed = True
        if not self._future.done():
            return Pending()
        return self.final_state()

    def final_state(self, timeout: float | None = None) -> State:
        """Wait for and return the final state, without marking the failure handled."""
        try:
            return self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise
        except concurrent.futures.CancelledError:
            return Cancelled(
                message="Task run was cancelled before it started: its flow run ended."
            )
        except BaseException as exc:  # noqa: BLE001 - a runner failure becomes Crashed
            return Crashed(data=exc, message=f"Task run could not be executed: {exc}")

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> Any:
        """The task's return value; raises its exception if it failed.

        Raises ``TimeoutError`` if the run is not final within ``timeout`` seconds.
        """
        self._observed = True
        try:
            state = self.final_state(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(
                f"Task run {self.task_name!r} did not finish within {timeout} seconds."
            ) from None
        return state.result(raise_on_failure=raise_on_failure)

    def add_done_callback(self, fn: Callable[[ConveyorFuture], object]) -> None:
        self._future.add_done_callback(lambda _: fn(self))

    def mark_observed(self) -> None:
        self._observed = True

    @property
    def observed(self) -> bool:
        return self._observed

    def __repr__(self) -> str:
        status = "done" if self._future.done() else "pending"
        return f"ConveyorFuture({self.task_name!r}, {status})"


class FutureList(list[ConveyorFuture]):
    """What ``Task.map`` returns: a list of futures that can be waited on together."""

    def wait(self, timeout: float | None = None) -> None:
        wait(self, timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[Any]:
        return [f.result(timeout=timeout, raise_on_failure=raise_on_failure) for f in self]


class DoneAndNotDone(NamedTuple):
    done: set[ConveyorFuture]
    not_done: set[ConveyorFuture]


def wait(futures: Iterable[ConveyorFuture], timeout: float | None = None) -> DoneAndNotDone:
    """Wait until all futures are final or ``timeout`` passes; returns (done, not_done)."""
    by_inner = {f._future: f for f in futures}
    done, not_done = concurrent.futures.wait(list(by_inner), timeout=timeout)
    return DoneAndNotDone({by_inner[f] for f in done}, {by_inner[f] for f in not_done})


def as_completed(
    futures: Iterable[ConveyorFuture], timeout: float | None = None
) -> Iterator[ConveyorFuture]:
    """Yield futures as their task runs finish; raises TimeoutError after ``timeout``."""
    by_inner = {f._future: f for f in futures}
    try:
        for inner in concurrent.futures.as_completed(list(by_inner), timeout=timeout):
            yield by_inner[inner]
    except concurrent.futures.TimeoutError:
        raise TimeoutError(f"Futures did not all finish within {timeout} seconds.") from None


def completed_future(task_run_id: uuid.UUID, task_name: str, state: State) -> ConveyorFuture:
    inner: concurrent.futures.Future[State] = concurrent.futures.Future()
    inner.set_result(state)
    return ConveyorFuture(task_run_id, task_name, inner)
