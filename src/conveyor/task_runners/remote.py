"""Running task calls in another process: what is shipped there and what comes back.

A remote runner ships a cloudpickled ``TaskCall`` whose upstream futures have been
replaced by their final states. The worker runs the ordinary task engine with a
collecting recorder and returns ``(final state, recorded events)``, pickled by us so that
a result that cannot travel becomes a clear failure instead of a broken pool.
"""

from __future__ import annotations

import atexit
import logging
import threading
from functools import partial
from typing import TYPE_CHECKING, Any

from conveyor.client.recorder import CollectingRecorder, RunRecorder
from conveyor.exceptions import SerializationError
from conveyor.schemas.runs import TaskRunStateRecord
from conveyor.schemas.states import Crashed, Failed, FailedRunError, State

if TYPE_CHECKING:
    from conveyor.client.transport import ApiTransport
    from conveyor.engine.futures import ConveyorFuture
    from conveyor.engine.task_call import TaskCall
    from conveyor.settings import Settings


def dumps(value: Any) -> bytes:
    import cloudpickle

    return cloudpickle.dumps(value)  # type: ignore[no-any-return]


def loads(data: bytes) -> Any:
    import cloudpickle

    return cloudpickle.loads(data)


def pack_call(call: TaskCall) -> bytes:
    """Pickle a call for a worker; raises SerializationError naming what failed."""
    try:
        return dumps(call)
    except Exception as exc:
        raise SerializationError(
            f"Task {call.task.name!r} could not be sent to a worker: its function or "
            f"arguments cannot be pickled ({type(exc).__name__}: {exc}). Pass picklable "
            "arguments, or use ThreadPoolTaskRunner."
        ) from exc


def run_packed_call(payload: bytes, upstream: dict[int, bytes] | None = None) -> bytes:
    """The function a worker process runs: unpack, run the engine, pack the outcome."""
    from conveyor.engine.run_logging import configure_logging, run_log_extra

    call: TaskCall = loads(payload)
    if upstream:
        call = call.with_placeholders_filled({i: loads(b)[0] for i, b in upstream.items()})
    configure_logging(call.environment.settings.logging_level)
    recorder = CollectingRecorder(transport=partial(worker_transport, call.environment.settings))
    if call.task.isasync:
        from conveyor.engine import runtime

        state = runtime.run_coro_sync(call.run_async(recorder))
    else:
        state = call.run_sync(recorder)
    _make_error_portable(state)
    try:
        return dumps((state, recorder.events))
    except Exception as exc:  # noqa: BLE001 - an unpicklable result fails the run clearly
        error = SerializationError(
            f"The result of task {call.task.name!r} cannot be pickled to send it back from "
            f"the worker ({type(exc).__name__}: {exc}). Return a picklable value, or use "
            "ThreadPoolTaskRunner."
        )
        failed = Failed(data=error, message=str(error))
        failed.state_details = state.state_details
        logging.getLogger("conveyor.task_runs").error(
            "Finished in state %r",
            failed,
            extra=run_log_extra(
                call.environment.flow_run_id,
                call.environment.flow_run_name,
                call.task_run_id,
                f"{call.task.name}-{call.dynamic_key}",
            ),
        )
        events = [
            TaskRunStateRecord(task_run_id=e.task_run_id, seq=e.seq, state=failed)
            if isinstance(e, TaskRunStateRecord) and e.state is state
            else e
            for e in recorder.events
        ]
        return dumps((failed, events))


_transports: dict[tuple[object, ...], ApiTransport | None] = {}
_transports_lock = threading.Lock()


def worker_transport(settings: Settings) -> ApiTransport | None:
    """The backend this worker process asks for concurrency slots (tag limits hold in
    worker processes too): made on first need, then kept for the life of the process."""
    if settings.backend == "none":
        return None
    key = (settings.api_url, settings.database_url, str(settings.home))
    with _transports_lock:
        if key not in _transports:
            from conveyor.client.transport import ApiTransport

            transport = _transports[key] = ApiTransport(settings)
            atexit.register(transport.close)
        return _transports[key]


def _make_error_portable(state: State) -> None:
    """Swap a run's exception that cannot make the trip home (it holds a lock, or its
    ``__init__`` takes other arguments than it passes to ``Exception``) for one that can,
    keeping its type name and message: the run stays Failed instead of looking Crashed."""
    exc = state.data
    if not isinstance(exc, BaseException):
        return
    try:
        loads(dumps(exc))
    except Exception as error:  # noqa: BLE001 - whatever fails, the original cannot travel
        state.data = FailedRunError(
            f"{type(exc).__name__}: {exc} (the exception itself could not be sent back "
            f"from the worker: {type(error).__name__}: {error})"
        )


def settle(
    call: TaskCall,
    recorder: RunRecorder,
    future: ConveyorFuture[Any],
    packed: bytes | None,
    error: BaseException | None,
) -> None:
    """Deliver a worker's outcome: replay its records here, then resolve the future."""
    try:
        if error is not None:
            raise error
        assert packed is not None
        state, events = loads(packed)
        if recorder.enabled:
            for event in events:
                recorder.emit(event)
    except BaseException as exc:  # noqa: BLE001 - a lost worker becomes a Crashed run
        state = record_crash(call, recorder, exc)
    future.set_state(state)


def record_the_run_first(recorder: RunRecorder) -> None:
    """Ship what the flow has queued, its own creation included: tasks in other
    processes talk to the backend directly (artifacts, concurrency slots), and the run
    they name must be recorded there before they do."""
    recorder.flush(timeout=30)


def record_crash(call: TaskCall, recorder: RunRecorder, exc: BaseException) -> State:
    """The worker (or the shipping) failed before the run reported a final state."""
    from conveyor.engine.task_engine import TaskRunEngine

    engine = TaskRunEngine(call, recorder)
    if isinstance(exc, SerializationError):
        engine.set_state(Failed(data=exc, message=str(exc)))
    else:
        message = f"The worker running this task failed: {type(exc).__name__}: {exc}"
        engine.set_state(Crashed(data=exc, message=message))
    engine.log_final()
    return engine.state


class PendingRuns:
    """The futures a remote runner has handed out and not yet resolved.

    Calls still waiting on upstream runs are shipped later, from callbacks, so a runner's
    shutdown waits on these rather than on its executor alone.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: set[ConveyorFuture[Any]] = set()

    def new_future(self, call: TaskCall) -> ConveyorFuture[Any]:
        from conveyor.engine.futures import ConveyorFuture

        future: ConveyorFuture[Any] = ConveyorFuture(call.task_run_id, call.task.name)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: ConveyorFuture[Any]) -> None:
        with self._lock:
            self._futures.discard(future)

    def wait_all(self) -> None:
        while True:
            with self._lock:
                pending = list(self._futures)
            if not pending:
                return
            for future in pending:
                future.wait()
