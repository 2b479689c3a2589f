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

A busy flow's own thread ships its records itself, when its transport can send a batch
and read the answer later (``Transport.dispatch``): it sends a batch without waiting,
and sends the next once the server has answered. The flusher thread would need the GIL
from the flow's thread several times per batch, and waits up to a switch interval
(5 ms) each time: batches reached the server late, grew, and the flow's end waited for
the last, largest one. Failures are handed to the flusher, which retries and warns.
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
CHECK_EVERY = 16
"""A flow's thread shipping its records looks for the server's answer every this many
events (a ``select`` call)."""


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


class Shipment(Protocol):
    """A batch sent without waiting for the answer (``Transport.dispatch``)."""

    def answered(self) -> bool:
        """Whether the answer has arrived; never blocks."""
        ...

    def finish(self) -> None:
        """Read the answer, waiting for it; raises when the batch was not recorded."""
        ...


class Transport(Protocol):
    """Where records go. Called from the engine (proposals) and the flusher (batches).

    A transport may also have ``dispatch(batch) -> Shipment`` (not None): the engine's
    thread then ships batches itself (see the module's docstring).
    """

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
        # One batch on its way at a time, so records arrive in order: whoever ships
        # (the flusher, a flow's thread, a proposal taking the queue) holds this.
        self._pump = threading.Lock()
        self._dispatch: Callable[[Batch], Shipment] | None = getattr(transport, "dispatch", None)
        self._pending: tuple[Shipment, Batch] | None = None  # dispatched, answer unread
        self._shipping_thread: int | None = None  # the thread that ships its own records
        self._resuming_thread: int | None = None  # ... once the flusher delivered again
        self._shipped_at = 0.0  # when it last dispatched (monotonic)
        _live_recorders.add(self)

    # -- engine side ------------------------------------------------------------------
    def create_flow_run(self, flow_run: FlowRun, state: State) -> State:
        self._ships_here()
        self.emit(NewFlowRun(flow_run, state))
        return state

    def propose_flow_run_state(self, flow_run_id: uuid.UUID, state: State) -> State:
        if state.is_running():
            self._ships_here()
        records = self._take_queued()
        try:
            return self.transport.propose_flow_run_state(flow_run_id, state, records)
        finally:
            if records is not None:
                self._landed(len(records))

    def _ships_here(self) -> None:
        """The thread that starts a flow run makes its records when its tasks run one
        after another: it ships them itself."""
        if self._dispatch is not None:
            self._shipping_thread = threading.get_ident()

    def emit(self, event: Event) -> None:
        if self._thread is None:
            self._start()
        queue = self._queue
        queue.append(event)
        size = len(queue)
        # (Every YIELD_EVERY-th size is a CHECK_EVERY-th: one test covers both.)
        if not size % CHECK_EVERY or size == self.stream_after or size >= self.max_queue:
            self._busy(size)

    def _busy(self, size: int) -> None:
        """``emit``'s work once ``size`` events wait or a batch is on its way."""
        if threading.get_ident() == self._shipping_thread:
            if size >= self.stream_after and not size % CHECK_EVERY:
                self._ship_here()
        else:
            if not size % YIELD_EVERY and self._in_flight:
                # A batch is on its way: let the flusher's thread have the GIL now rather
                # than after the interpreter's switch interval (5 ms), each time it needs it.
                time.sleep(0)
            if size == self.stream_after:
                self._wake.set()
        if size >= self.max_queue:
            self._wait_below(self.max_queue // 2)

    def flush(self, timeout: float | None = None) -> bool:
        """Ship everything queued so far; True when the queue drained in time."""
        if self._thread is None:
            return True
        with self._drained:
            if not self._queue and not self._in_flight:
                return True  # (asking the flusher anyway, it might ship the next flow's)
        deadline = None if timeout is None else time.monotonic() + timeout
        self._ship_now()
        with self._drained:
            while self._queue or self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                if self._queue and not self._urgent:
                    # More came while the flusher shipped. Only then: a request left over
                    # would have it ship in the middle of the next flow, racing its thread.
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
        """Everything queued, for a proposal to carry, once no batch is on its way (so
        records keep their order); None when nothing is queued."""
        if self._thread is None:
            return None
        while True:
            with self._pump:
                self._settle()
                with self._drained:
                    while self._in_flight:  # another flow's proposal
                        self._drained.wait(0.1)
                    if len(self._queue) <= self.batch_size:
                        return self._take(self.batch_size)
            self.flush()  # more than one request's worth: the flusher ships the excess

    def _take(self, limit: int) -> Batch | None:
        """Up to ``limit`` queued events, oldest first, counted in flight until
        ``_landed``; None when nothing is queued."""
        with self._drained:
            queue = self._queue
            count = min(len(queue), limit)
            if not count:
                return None
            batch = Batch()
            for _ in range(count):
                batch.add(queue.popleft())
            self._in_flight += count
            return batch

    def _ship_here(self) -> None:
        """From the shipping thread: send the queue if the last batch it sent has its
        answer (or there is none); never waits."""
        dispatch = self._dispatch
        if dispatch is None or not self._pump.acquire(blocking=False):
            return  # the flusher is shipping (or settling a failure)
        try:
            pending = self._pending
            if pending is not None and not (pending[0].answered() and self._settle()):
                return
            batch = self._take(self.batch_size)
            if batch is None:
                return
            try:
                self._pending = (dispatch(batch), batch)
            except Exception:  # noqa: BLE001 - the flusher retries it, and says so
                self._give_back(batch)
                return
            self._shipped_at = time.monotonic()
        finally:
            self._pump.release()

    def _settle(self) -> bool:
        """(Holding the pump.) Read the answer to a dispatched batch, waiting for it; a
        batch the server did not record goes back to the queue. False if it did."""
        if self._pending is None:
            return True
        shipment, batch = self._pending
        self._pending = None
        try:
            shipment.finish()
        except Exception:  # noqa: BLE001 - the flusher retries it, and says so
            self._give_back(batch)
            return False
        self._landed(len(batch))
        return True

    def _give_back(self, batch: Batch) -> None:
        """A batch the shipping thread could not deliver: to the front of the queue, for
        the flusher to retry; the thread leaves shipping to the flusher until it has."""
        with self._drained:
            self._queue.extendleft(reversed(batch.events()))
            self._in_flight -= len(batch)
            self._resuming_thread = self._shipping_thread or self._resuming_thread
            self._shipping_thread = None
            self._urgent = True
            self._drained.notify_all()
        self._wake.set()

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
                urgent = self._urgent
                self._urgent = False
            if not (woken or urgent) and time.monotonic() - self._shipped_at < self.flush_interval:
                continue  # a flow's thread is shipping its records: it needs no help
            self._ship(urgent or not woken)  # everything: a flush, or the interval is up

    def _ship(self, everything: bool) -> None:
        """Ship batches while ``stream_after`` events wait, or until none is left when
        ``everything``. Not a few events at a time as they trickle in while a batch is in
        flight: each request costs the flow's thread GIL time, whatever its size."""
        queue = self._queue
        # Everything: what is queued now, not what keeps coming while it ships (a flow's
        # thread may be shipping that itself).
        left = len(queue) if everything else -1
        with self._pump:
            self._settle()
            while left > 0 or (left < 0 and len(queue) >= self.stream_after):
                batch = self._take(self.batch_size if left < 0 else min(left, self.batch_size))
                if batch is None:  # a proposal took them meanwhile
                    break
                if left > 0:
                    left -= len(batch)
                try:
                    self._send_with_retries(batch)
                finally:
                    self._landed(len(batch))
                if self._resuming_thread is not None and not self._closed:
                    # Delivered: the server is back, the flow's thread may ship again.
                    self._shipping_thread, self._resuming_thread = self._resuming_thread, None
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
