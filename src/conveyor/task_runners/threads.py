"""Runs submitted tasks on a pool of threads; async tasks share one event loop thread.

The pool is a plain queue and worker threads rather than ``ThreadPoolExecutor``: the
executor allocates a ``concurrent.futures.Future`` and a work item per call, which a
100,000-task map pays for twice over next to our own futures.
"""

from __future__ import annotations

import contextvars
import os
import queue
import threading
from typing import TYPE_CHECKING, Any

from conveyor.engine.futures import ConveyorFuture
from conveyor.task_runners.base import TaskRunner, check_max_workers

if TYPE_CHECKING:
    import asyncio

    from conveyor.engine.task_call import TaskCall

_Work = tuple[contextvars.Context, "TaskCall", ConveyorFuture[Any]]


class ThreadPoolTaskRunner(TaskRunner):
    """Sync tasks run on up to ``max_workers`` threads (default: min(32, CPUs + 4)).

    Async tasks run concurrently on one event loop thread owned by the runner, so a
    thousand awaiting tasks need no thousand threads.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        check_max_workers(max_workers, "ThreadPoolTaskRunner")
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)
        self._outstanding = 0
        self._settled = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def duplicate(self) -> ThreadPoolTaskRunner:
        return ThreadPoolTaskRunner(self.max_workers)

    def __repr__(self) -> str:
        return f"ThreadPoolTaskRunner(max_workers={self.max_workers})"

    def submit(self, call: TaskCall) -> ConveyorFuture[Any]:
        future: ConveyorFuture[Any] = ConveyorFuture(call.task_run_id, call.task.name)
        context = contextvars.copy_context()
        with self._settled:
            self._outstanding += 1
        if call.task.isasync:
            self._submit_async(call, context, future)
        else:
            self._queue.put((context, call, future))
            if not self._idle.acquire(blocking=False):
                self._add_worker()
        return future

    def _add_worker(self) -> None:
        with self._lock:
            if len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._work, name=f"conveyor-task-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        work = self._queue
        while True:
            item = work.get()
            if item is None:
                return
            context, call, future = item
            del item
            try:
                state = context.run(call.run_sync, self.recorder)
            except BaseException as exc:  # noqa: BLE001 - the run is reported Crashed
                future.set_runner_error(exc)
            else:
                future.set_state(state)
            del context, call, future
            self._settle_one()
            self._idle.release()

    def _settle_one(self) -> None:
        with self._settled:
            self._outstanding -= 1
            if self._outstanding == 0:
                self._settled.notify_all()

    def _submit_async(
        self, call: TaskCall, context: contextvars.Context, future: ConveyorFuture[Any]
    ) -> None:
        loop = self._event_loop()

        def finished(task: asyncio.Task[Any]) -> None:
            if task.cancelled():
                future.set_cancelled("Task run was cancelled.")
            elif task.exception() is not None:
                future.set_runner_error(task.exception())  # type: ignore[arg-type]
            else:
                future.set_state(task.result())
            self._settle_one()

        def start() -> None:
            # Creating the task inside context.run gives it a copy of the submitter's
            # context (flow run, tags), also on Python 3.10 which lacks create_task(context=).
            task = context.run(loop.create_task, call.run_async(self.recorder))
            task.add_done_callback(finished)

        loop.call_soon_threadsafe(start)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        import asyncio  # only runners that meet an async task pay for asyncio

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
        if wait:
            # Tasks may submit more tasks, so wait for the count to reach zero rather
            # than for the queue to look empty.
            with self._settled:
                while self._outstanding:
                    self._settled.wait()
        else:
            self._cancel_queued()
        with self._lock:
            threads, self._threads = self._threads, []
            loop, thread = self._loop, self._loop_thread
            self._loop = self._loop_thread = None
        for _ in threads:
            self._queue.put(None)
        if loop is not None and thread is not None:
            if wait:
                loop.call_soon_threadsafe(loop.stop)
                thread.join()
                loop.close()
            else:
                loop.call_soon_threadsafe(_cancel_all_and_stop, loop)
        if wait:
            for worker in threads:
                worker.join()
        super().shutdown(wait)

    def _cancel_queued(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item[2].set_cancelled()
                self._settle_one()


def _cancel_all_and_stop(loop: asyncio.AbstractEventLoop) -> None:
    import asyncio

    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.call_soon(loop.stop)
