"""Futures for submitted task runs, and waiting on many of them.

A ``ConveyorFuture`` is its own completion primitive: a few slots, with an event made
only when someone actually blocks on an unfinished run. ``concurrent.futures.Future``
carries a Condition, an RLock and a deque each (~1.4 kB); a flow that maps 100,000
tasks holds 100,000 futures, so that difference is most of its memory.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

if TYPE_CHECKING:
    from conveyor.schemas.states import State

R = TypeVar("R")

# One lock for all futures: held only for a few instructions, never while waiting.
_lock = threading.Lock()


class ConveyorFuture(Generic[R]):
    """The eventual final state of a submitted task run.

    It resolves to a final ``State`` and never raises for a task's own failure; a runner
    failure (a worker that died, a payload that could not be shipped) becomes Crashed.
    """

    __slots__ = (
        "__weakref__",
        "_callbacks",
        "_event",
        "_observed",
        "_state",
        "native",
        "task_name",
        "task_run_id",
    )

    def __init__(self, task_run_id: uuid.UUID, task_name: str, native: Any = None) -> None:
        self.task_run_id = task_run_id
        self.task_name = task_name
        self.native = native
        """The runner's own handle (a Dask future), used to keep data on the cluster."""
        self._state: State | None = None
        self._event: threading.Event | None = None
        self._callbacks: list[Callable[[ConveyorFuture[R]], object]] | None = None
        self._observed = False

    # -- producer side (task runners) -----------------------------------------------
    def set_state(self, state: State) -> None:
        """Resolve the future with the run's final state; later calls are ignored."""
        with _lock:
            if self._state is not None:
                return
            self._state = state
            event, callbacks = self._event, self._callbacks
            self._callbacks = None
        if event is not None:
            event.set()
        for callback in callbacks or ():
            callback(self)

    # Imports below are deferred: `from conveyor import flow, task` must not load pydantic
    # or asyncio before a flow runs.
    def set_runner_error(self, error: BaseException) -> None:
        from conveyor.schemas.states import Crashed

        self.set_state(Crashed(data=error, message=f"Task run could not be executed: {error}"))

    def set_cancelled(
        self, message: str = "Task run was cancelled before it started: its flow ended."
    ) -> None:
        from conveyor.schemas.states import Cancelled

        self.set_state(Cancelled(message=message))

    # -- consumer side ----------------------------------------------------------------
    def done(self) -> bool:
        return self._state is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the task run is final or ``timeout`` passes; True if final."""
        if self._state is not None:
            return True
        with _lock:
            if self._state is not None:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)

    async def wait_async(self) -> None:
        if self._state is not None:
            return
        import asyncio

        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def release() -> None:
            if not waiter.done():
                waiter.set_result(None)

        def wake(_: ConveyorFuture[R]) -> None:
            loop.call_soon_threadsafe(release)

        self.add_done_callback(wake)
        await waiter

    @property
    def state(self) -> State:
        """The final state if the run is done, else a Pending placeholder."""
        self._observed = True
        if self._state is not None:
            return self._state
        from conveyor.schemas.states import Pending

        return Pending()

    def final_state(self, timeout: float | None = None) -> State:
        """Wait for and return the final state, without marking the failure handled."""
        if self._state is None and not self.wait(timeout):
            raise TimeoutError(
                f"Task run {self.task_name!r} did not finish within {timeout} seconds."
            )
        assert self._state is not None
        return self._state

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """The task's return value; raises its exception if it failed, and
        ``TimeoutError`` if the run is not final within ``timeout`` seconds."""
        self._observed = True
        value: R = self.final_state(timeout).result(raise_on_failure=raise_on_failure)
        return value

    def add_done_callback(self, fn: Callable[[ConveyorFuture[R]], object]) -> None:
        """Call ``fn(future)`` when the run is final (at once if it already is)."""
        with _lock:
            if self._state is None:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return
        fn(self)

    def mark_observed(self) -> None:
        self._observed = True

    @property
    def observed(self) -> bool:
        return self._observed

    def __repr__(self) -> str:
        status = repr(self._state) if self._state is not None else "pending"
        return f"ConveyorFuture({self.task_name!r}, {status})"


class FutureList(list[ConveyorFuture[R]], Generic[R]):
    """What ``Task.map`` returns: a list of futures that can be waited on together."""

    def wait(self, timeout: float | None = None) -> None:
        wait(self, timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[R]:
        return [f.result(timeout=timeout, raise_on_failure=raise_on_failure) for f in self]


class DoneAndNotDone(NamedTuple):
    done: set[ConveyorFuture[Any]]
    not_done: set[ConveyorFuture[Any]]


def wait(futures: Iterable[ConveyorFuture[Any]], timeout: float | None = None) -> DoneAndNotDone:
    """Wait until all futures are final or ``timeout`` passes; returns (done, not_done)."""
    futures = list(futures)
    deadline = None if timeout is None else time.monotonic() + timeout
    for future in futures:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not future.wait(remaining):
            break
    done = {f for f in futures if f.done()}
    return DoneAndNotDone(done, {f for f in futures if not f.done()})


def as_completed(
    futures: Iterable[ConveyorFuture[Any]], timeout: float | None = None
) -> Iterator[ConveyorFuture[Any]]:
    """Yield futures as their task runs finish; raises TimeoutError after ``timeout``."""
    pending = list(dict.fromkeys(futures))
    finished: queue.SimpleQueue[ConveyorFuture[Any]] = queue.SimpleQueue()
    for future in pending:
        future.add_done_callback(finished.put)
    deadline = None if timeout is None else time.monotonic() + timeout
    for _ in pending:
        remaining = None if deadline is None else deadline - time.monotonic()
        try:
            if remaining is not None and remaining <= 0:
                raise queue.Empty
            yield finished.get(timeout=remaining)
        except queue.Empty:
            raise TimeoutError(f"Futures did not all finish within {timeout} seconds.") from None


def completed_future(task_run_id: uuid.UUID, task_name: str, state: State) -> ConveyorFuture[Any]:
    future: ConveyorFuture[Any] = ConveyorFuture(task_run_id, task_name)
    future.set_state(state)
    return future
