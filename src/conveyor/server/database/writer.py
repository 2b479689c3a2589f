"""The SQLite writer thread: write transactions one at a time, state changes first.

SQLite takes one writer at a time, so the server runs every write transaction on one
thread (``engine.Database``). A plain FIFO made a worker's claim, or a flow's "I am
Running", wait behind every run creation or record batch queued before it: a burst of 20
run creations held the first claim back ~100 ms, and each run's start with it. Here a
write marked urgent (short and on a run's critical path: a state change, a claim, a
heartbeat) goes before queued ordinary ones. So that a stream of urgent writes cannot
starve the rest, an ordinary write runs after at most ``URGENT_IN_A_ROW`` urgent ones.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

URGENT_IN_A_ROW = 8

_Item = tuple["concurrent.futures.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class WriterThread(concurrent.futures.Executor):
    """A one-thread executor with two queues: urgent work first, within the limit."""

    def __init__(self, name: str) -> None:
        self._urgent: deque[_Item] = deque()
        self._ordinary: deque[_Item] = deque()
        self._ready = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        """An ordinary write (``Executor.submit``, so ``run_in_executor`` takes this)."""
        return self.submit_ordered(False, fn, *args, **kwargs)

    def submit_ordered(
        self, urgent: bool, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        call = fn if not kwargs else _with_kwargs(fn, kwargs)
        with self._ready:
            if self._closing:
                raise RuntimeError("the database writer is shut down")
            (self._urgent if urgent else self._ordinary).append((future, call, args))
            self._ready.notify()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._ready:
            self._closing = True
            if cancel_futures:
                for queue in (self._urgent, self._ordinary):
                    while queue:
                        queue.popleft()[0].cancel()
            self._ready.notify()
        if wait:
            self._thread.join()

    def _next(self, streak: int) -> tuple[_Item | None, int]:
        """The next item (None: shut down and drained) and the new urgent streak."""
        with self._ready:
            while not self._urgent and not self._ordinary:
                if self._closing:
                    return None, 0
                self._ready.wait()
            if self._urgent and (streak < URGENT_IN_A_ROW or not self._ordinary):
                return self._urgent.popleft(), streak + 1
            return self._ordinary.popleft(), 0

    def _run(self) -> None:
        streak = 0
        while True:
            item, streak = self._next(streak)
            if item is None:
                return
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits it
                future.set_exception(exc)
            else:
                future.set_result(result)


def _with_kwargs(fn: Callable[..., T], kwargs: dict[str, Any]) -> Callable[..., T]:
    def call(*args: Any) -> T:
        return fn(*args, **kwargs)

    return call
