"""The engine's reporting interface and its batching implementation.

Flow-run states are proposed synchronously (the server will orchestrate them). Everything
else is queued and shipped in batches by one background flusher thread, so the engine
never waits on a round trip per task: task runs, their states, logs, and the creation of
a flow run the engine starts itself (the server has nothing to decide about a new run,
so the run need not wait for it). A proposal carries whatever is queued at that moment,
ahead of the state, in the same request: the server always learns of a run, its task
runs and logs before the state that ends it, and a short flow costs one round trip.
The queue is bounded: when it is full, emitters wait for the flusher (backpressure)
rather than grow memory.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from conveyor.schemas.logs import LogRecordCreate
from conveyor.schemas.runs import FlowRun, TaskRun, TaskRunStateRecord
from conveyor.schemas.states import State

_log = logging.getLogger("conveyor.client")

YIELD_EVERY = 32
"""While a batch is in flight, the engine's thread offers the GIL every this many events."""


@dataclass(frozen=True)
class NewFlowRun:
    """A flow run the engine created and started: recorded in its first state."""

    flow_run: FlowRun
    state: State


Event = TaskRun | TaskRunStateRecord | LogRecordCreate | NewFlowRun


@dataclass
class Batch:
    flow_runs: list[NewFlowRun] = field(default_factory=list)
    task_runs: list[TaskRun] = field(default_factory=list)
    task_run_states: list[TaskRunStateRecord] = field(default_factory=list)
    logs: list[LogRecordCreate] = field(default_factory=list)

    def add(self, event: Event) -> None:
        if isinstance(event, TaskRunStateRecord):
            self.task_run_states.append(event)
        elif isinstance(event, TaskRun):
            self.task_runs.append(event)
        elif isinstance(event, NewFlowRun):
            self.flow_runs.append(event)
        else:
            self.logs.append(event)

    def events(self) -> list[Event]:
        """In recording order: a record never comes before the run it belongs to."""
        return [*self.flow_runs, *self.task_runs, *self.task_run_states, *self.logs]

    def __len__(self) -> int:
        return (
            len(self.flow_runs) + len(self.task_runs) + len(self.task_run_states) + len(self.logs)
        )


class Transport(Protocol):
    """Where records go. Called from the engine (proposals) and the flusher (batches)."""

    def propose_flow_run_state(
        self, flow_run_id: uuid.UUID, state: State, records: Batch | None = None
    ) -> State:
        """Record ``records`` (if any), then propose ``state``; returns the state the
        backend recorded."""
        ...

    def send_batch(self, batch: Batch) -> None: ...

    def close(self) -> None: ...


class RunRecorder(Protocol):
    """What the engine calls. ``enabled`` False lets the engine skip building records."""

    enabled: bool

    def create_flow_run(self, flow_run: FlowRun, state: State) -> State:
        """Create the run in its first state; returns the state the backend recorded."""
        ...

    def propose_flow_run_state(self, flow_run_id: uuid.UUID, state: State) -> State: ...

    def emit(self, event: Event) -> None: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def close(self) -> None: ...


class CollectingRecorder:
    """Keeps events in a list; used inside worker processes to send them home.

    ``transport``, when given, makes the backend a worker asks for concurrency slots;
    it is only called when a task needs one (see ``engine.concurrency``).
    """

    enabled = True

    def __init__(self, transport: Callable[[], object | None] | None = None) -> None:
        self.events: list[Event] = []
        self._make_transport = transport

    @property
    def transport(self) -> object | None:
        return self._make_transport() if self._make_transport is not None else None

    def create_flow_run(self, flow_run: FlowRun, state: State) -> State:
        raise NotImplementedError("flow runs are not created inside task-runner workers")

    def propose_flow_run_state(self, flow_run_id: uuid.UUID, state: State) -> State:
        raise NotImplementedError("flow runs are not orchestrated inside task-runner workers")

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        return None


class MemoryTransport:
    """Keeps everything in memory; the reference transport for tests."""

    def __init__(self) -> None:
        self.flow_runs: dict[uuid.UUID, FlowRun] = {}
        self.flow_run_states: dict[uuid.UUID, list[State]] = {}
        self.task_runs: dict[uuid.UUID, TaskRun] = {}
        self.task_run_states: dict[uuid.UUID, list[TaskRunStateRecord]] = {}
        self.logs: list[LogRecordCreate] = []
        self.batches = 0
        self._lock = threading.Lock()

    def propose_flow_run_state(
        self, flow_run_id: uuid.UUID, state: State, records: Batch | None = None
    ) -> State:
        if records is not None:
            self.send_batch(records)
        with self._lock:
            self.flow_run_states.setdefault(flow_run_id, []).append(state)
        return state

    def send_batch(self, batch: Batch) -> None:
        with self._lock:
            self.batches += 1
            for new in batch.flow_runs:
                if new.flow_run.id not in self.flow_runs:
                    self.flow_runs[new.flow_run.id] = new.flow_run
                    self.flow_run_states.setdefault(new.flow_run.id, []).append(new.state)
            for task_run in batch.task_runs:
                self.task_runs[task_run.id] = task_run
            for record in batch.task_run_states:
                states = self.task_run_states.setdefault(record.task_run_id, [])
                if any(existing.seq == record.seq for existing in states):
                    continue  # a repeated batch must not duplicate history
                states.append(record)
                states.sort(key=lambda r: r.seq)
            self.logs.extend(batch.logs)

    def close(self) -> None:
        return None

    def task_run_state_types(self, task_run_id: uuid.UUID) -> list[str]:
        return [r.state.type.value for r in self.task_run_states.get(task_run_id, [])]


_live_recorders: weakref.WeakSet[Recorder] = weakref.WeakSet()


@atexit.register
def _flush_all_at_exit() -> None:
    for recorder in list(_live_recorders):
        recorder.close()


class Recorder:
    """Batches events in a bounded queue and ships them from one flusher thread."""

    enabled = True

    def __init__(
        self,
        transport: Transport,
        *,
        flush_interval: float = 0.5,
        batch_size: int = 2_000,
        max_queue: int = 100_000,
        stream_after: int = 200,
    ) -> None:
        self.transport = transport
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        # Start shipping once this many events wait; while a batch is in flight the next
        # one gathers, so batches grow to what the backend can take ("natural batching")
        # and a busy flow streams its records instead of piling them up for the end.
        self.stream_after = min(stream_after, batch_size)
        self.max_queue = max_queue
        self._queue: deque[Event] = deque()
        self._wake = threading.Event()
        self._drained = threading.Condition()
        self._in_flight = 0
        self._urgent = False  # ship everything queued, however little (a flush waits)
        self._closed = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        _live_recorders.add(self)

    # -- engine side ------------------------------------------------------------------
    def create_flow_run(self, flow_run: FlowRun, state: State) -> State:
        self.emit(NewFlowRun(flow_run, state))
        return state

    def propose_flow_run_state(self, flow_run_id: uuid.UUID, state: State) -> State:
        records = self._take_queued()
        try:
            return self.transport.propose_flow_run_state(flow_run_id, state, records)
        finally:
            if records is not None:
                self._landed(len(records))

    def emit(self, event: Event) -> None:
        if self._thread is None:
            self._start()
        queue = self._queue
        queue.append(event)
        size = len(queue)
        if not size % YIELD_EVERY and self._in_flight:
            # A batch is on its way: let the flusher's thread have the GIL now rather
            # than after the interpreter's switch interval (5 ms), each time it needs it.
            time.sleep(0)
        if size >= self.stream_after:
            if size == self.stream_after:
                self._wake.set()
            if size >= self.max_queue:
                self._wait_below(self.max_queue // 2)

    def flush(self, timeout: float | None = None) -> bool:
        """Ship everything queued so far; True when the queue drained in time."""
        if self._thread is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        self._ship_now()
        with self._drained:
            while self._queue or self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._ship_now()
                self._drained.wait(remaining if remaining is not None else 0.1)
        return True

    def close(self) -> None:
        if self._closed:
            return
        self.flush(timeout=30)
        self._closed = True
        self._wake.set()
        self.transport.close()

    # -- flusher side -----------------------------------------------------------------
    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="conveyor-recorder", daemon=True)
                thread.start()
                self._thread = thread

    def _take_queued(self) -> Batch | None:
        """Everything queued, for a proposal to carry, once no batch is in flight (so
        records keep their order); None when nothing is queued."""
        if self._thread is None:
            return None
        while True:
            with self._drained:
                while self._in_flight:
                    self._drained.wait(0.1)
                queue = self._queue
                if len(queue) <= self.batch_size:
                    if not queue:
                        return None
                    batch = Batch()
                    for _ in range(len(queue)):
                        batch.add(queue.popleft())
                    self._in_flight += len(batch)
                    return batch
            self.flush()  # more than one request's worth: the flusher ships the excess

    def _landed(self, count: int) -> None:
        with self._drained:
            self._in_flight -= count
            self._drained.notify_all()

    def _ship_now(self) -> None:
        with self._drained:  # (reentrant) the flusher reads and resets it under the lock
            self._urgent = True
        self._wake.set()

    def _wait_below(self, size: int) -> None:
        with self._drained:
            while len(self._queue) > size:
                self._ship_now()
                self._drained.wait(0.05)

    def _run(self) -> None:
        while not self._closed:
            woken = self._wake.wait(self.flush_interval)
            self._wake.clear()
            with self._drained:
                everything = self._urgent or not woken  # a flush, or the interval is up
                self._urgent = False
            self._ship(everything)

    def _ship(self, everything: bool) -> None:
        """Ship batches while ``stream_after`` events wait, or until none is left when
        ``everything``. Not a few events at a time as they trickle in while a batch is in
        flight: each request costs the flow's thread GIL time, whatever its size."""
        queue = self._queue
        while len(queue) >= (1 if everything else self.stream_after):
            batch = Batch()
            with self._drained:
                count = min(len(queue), self.batch_size)
                if not count:  # a proposal took them meanwhile
                    break
                for _ in range(count):
                    batch.add(queue.popleft())
                self._in_flight += count
            try:
                self._send_with_retries(batch)
            finally:
                self._landed(count)
        with self._drained:
            self._drained.notify_all()

    def _send_with_retries(self, batch: Batch) -> None:
        delay = 0.1
        warned = False
        while True:
            try:
                self.transport.send_batch(batch)
                if warned:
                    _log.warning("Run records caught up: delayed batches were delivered.")
                return
            except Exception as exc:  # noqa: BLE001 - any transport failure is retried
                if self._closed:
                    _log.error("Dropping %d run records at shutdown: %s", len(batch), exc)
                    return
                if not warned:
                    _log.warning(
                        "Could not deliver %d run records (%s); buffering and retrying.",
                        len(batch),
                        exc,
                    )
                    warned = True
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
