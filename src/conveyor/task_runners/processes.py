"""Runs submitted tasks in a pool of worker processes (for CPU-bound Python code).

Workers are started with the ``spawn`` method: safe next to the engine's threads, but a
script that uses this runner must guard its entry point with ``if __name__ == "__main__":``.
Upstream results are awaited here and shipped with the call, so workers never wait.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from conveyor.engine.futures import ConveyorFuture
from conveyor.exceptions import SerializationError
from conveyor.task_runners import remote
from conveyor.task_runners.base import TaskRunner, check_max_workers

if TYPE_CHECKING:
    from conveyor.client.recorder import RunRecorder
    from conveyor.engine.task_call import TaskCall


class ProcessPoolTaskRunner(TaskRunner):
    """Up to ``max_workers`` worker processes (default: the number of CPUs)."""

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        check_max_workers(max_workers, "ProcessPoolTaskRunner")
        self.max_workers = max_workers or os.cpu_count() or 1
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._pending = remote.PendingRuns()

    def duplicate(self) -> ProcessPoolTaskRunner:
        return ProcessPoolTaskRunner(self.max_workers)

    def start(self, recorder: RunRecorder) -> None:
        super().start(recorder)
        remote.record_the_run_first(recorder)

    def __repr__(self) -> str:
        return f"ProcessPoolTaskRunner(max_workers={self.max_workers})"

    def _pool(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    self.max_workers, mp_context=multiprocessing.get_context("spawn")
                )
            return self._executor

    def submit(self, call: TaskCall) -> ConveyorFuture[Any]:
        future = self._pending.new_future(call)
        remaining = [f for f in call.upstream_futures() if not f.done()]
        if not remaining:
            self._ship(call, future)
        else:
            _when_all_done(remaining, lambda: self._ship(call, future))
        return future

    def _ship(self, call: TaskCall, future: ConveyorFuture[Any]) -> None:
        recorder = self.recorder
        try:
            payload = remote.pack_call(call.with_upstream_states())
            inner = self._submit(payload)
        except (SerializationError, RuntimeError) as exc:  # unpicklable, or pool shut down
            remote.settle(call, recorder, future, None, exc)
            return

        def done(f: concurrent.futures.Future[bytes]) -> None:
            if f.cancelled():
                future.set_cancelled()
                return
            error = f.exception()
            remote.settle(call, recorder, future, None if error else f.result(), error)

        inner.add_done_callback(done)

    def _submit(self, payload: bytes) -> concurrent.futures.Future[bytes]:
        pool = self._pool()
        try:
            return pool.submit(remote.run_packed_call, payload)
        except BrokenProcessPool:
            # A worker died (os._exit, a segfault, the OOM killer): the runs it had
            # crashed, but later runs get a fresh pool instead of crashing too.
            with self._lock:
                if self._executor is pool:
                    self._executor = None
            pool.shutdown(wait=False)
            return self._pool().submit(remote.run_packed_call, payload)

    def shutdown(self, wait: bool = True) -> None:
        if wait:
            self._pending.wait_all()
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=not wait)
        super().shutdown(wait)


def _when_all_done(futures: list[ConveyorFuture[Any]], then: Callable[[], object]) -> None:
    """Call ``then()`` once, after every future is done (from whichever finishes last)."""
    lock = threading.Lock()
    left = [len(futures)]

    def one_done(_: ConveyorFuture[Any]) -> None:
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            then()

    for future in futures:
        future.add_done_callback(one_done)
