"""Runs submitted tasks on a thread pool; async tasks share one event loop thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
import threading
from typing import TYPE_CHECKING, Any

from conveyor.engine.futures import ConveyorFuture
from conveyor.schemas.states import State
from conveyor.task_runners.base import TaskRunner, check_max_workers

if TYPE_CHECKING:
    from conveyor.engine.task_engine import TaskCall


class ThreadPoolTaskRunner(TaskRunner):
    """Sync tasks run on up to ``max_workers`` threads (default: min(32, CPUs + 4)).

    Async tasks run concurrently on one event loop thread owned by the runner, so a
    thousand awaiting tasks need no thousand threads.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        check_max_workers(max_workers, "ThreadPoolTaskRunner")
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def duplicate(self) -> ThreadPoolTaskRunner:
        return ThreadPoolTaskRunner(self.max_workers)

    def __repr__(self) -> str:
        return f"ThreadPoolTaskRunner(max_workers={self.max_workers})"

    def submit(self, call: TaskCall) -> ConveyorFuture:
        context = contextvars.copy_context()
        inner: concurrent.futures.Future[State]
        if call.task.isasync:
            inner = self._submit_async(call, context)
        else:
            executor = self._executor
            if executor is None:
                executor = self._start_executor()
            inner = executor.submit(context.run, call.run_sync, self.recorder)
        return ConveyorFuture(call.task_run_id, call.task.name, inner)

    def _start_executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    self.max_workers, thread_name_prefix="conveyor-task"
                )
            return self._executor

    def _submit_async(
        self, call: TaskCall, context: contextvars.Context
    ) -> concurrent.futures.Future[State]:
        loop = self._event_loop()
        inner: concurrent.futures.Future[State] = concurrent.futures.Future()

        def start() -> None:
            # Creating the task inside context.run gives it a copy of the submitter's
            # context (flow run, tags), also on Python 3.10 which lacks create_task(context=).
            task = context.run(loop.create_task, call.run_async(self.recorder))
            task.add_done_callback(lambda t: _copy_outcome(t, inner))

        loop.call_soon_threadsafe(start)
        return inner

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="conveyor-async-tasks", daemon=True
                )
                thread.start()
                self._loop, self._loop_thread = loop, thread
            return self._loop

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            executor, loop, thread = self._executor, self._loop, self._loop_thread
            self._executor = self._loop = self._loop_thread = None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=not wait)
        if loop is not None and thread is not None:
            if wait:
                _drain_and_stop(loop)
                thread.join()
                loop.close()
            else:
                loop.call_soon_threadsafe(_cancel_all_and_stop, loop)
        super().shutdown(wait)


def _copy_outcome(task: asyncio.Task[Any], inner: concurrent.futures.Future[State]) -> None:
    if task.cancelled():
        inner.cancel()
    elif task.exception() is not None:
        inner.set_exception(task.exception())
    else:
        inner.set_result(task.result())


def _cancel_all_and_stop(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.call_soon(loop.stop)


def _drain_and_stop(loop: asyncio.AbstractEventLoop) -> None:
    async def drain() -> None:
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        loop.stop()

    asyncio.run_coroutine_threadsafe(drain(), loop)
