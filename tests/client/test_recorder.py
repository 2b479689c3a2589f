"""The batching recorder: streams once enough is queued, ships the rest on flush."""

from __future__ import annotations

import datetime
import threading
import time
import uuid

import pytest

from conveyor.client.recorder import YIELD_EVERY, Batch, MemoryTransport, Recorder
from conveyor.schemas.logs import LogRecordCreate


def _line(n: int) -> LogRecordCreate:
    now = datetime.datetime.now(datetime.timezone.utc)
    return LogRecordCreate(id=uuid.uuid4(), name="t", level=20, message=str(n), timestamp=now)


def _wait_for(condition: object, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.01)
    return False


def test_records_stream_once_enough_wait_without_a_flush() -> None:
    memory = MemoryTransport()
    # An interval far longer than the test: only streaming can deliver before the flush.
    recorder = Recorder(memory, flush_interval=60, stream_after=10)
    try:
        for n in range(9):
            recorder.emit(_line(n))
        time.sleep(0.2)
        assert memory.logs == []  # below the threshold: nothing is sent yet
        recorder.emit(_line(9))
        assert _wait_for(lambda: len(memory.logs) == 10)
        for n in range(10, 15):
            recorder.emit(_line(n))
        assert recorder.flush(timeout=10)
        assert [log.message for log in memory.logs] == [str(n) for n in range(15)]
    finally:
        recorder.close()


def test_a_busy_emitter_is_shipped_in_batches_no_larger_than_the_batch_size() -> None:
    memory = MemoryTransport()
    recorder = Recorder(memory, flush_interval=60, batch_size=50, stream_after=10)
    try:
        for n in range(1_000):
            recorder.emit(_line(n))
        assert recorder.flush(timeout=10)
        assert len(memory.logs) == 1_000
        assert 20 <= memory.batches < 1_000  # batched, never one request per record
    finally:
        recorder.close()


class _SlowTransport(MemoryTransport):
    """Holds each batch until told to go, so a test can emit while one is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.sending = threading.Event()
        self.go = threading.Event()

    def send_batch(self, batch: Batch) -> None:
        self.sending.set()
        self.go.wait(10)
        super().send_batch(batch)


def test_the_engine_offers_the_gil_while_a_batch_is_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every YIELD_EVERY events, and only while a batch is on its way: otherwise the
    flusher's thread waits a whole switch interval (5 ms) for the GIL each time it needs
    it, and the batches reach the server late."""
    transport = _SlowTransport()
    recorder = Recorder(transport, flush_interval=60, stream_after=10)
    yields: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        yields.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    try:
        for n in range(9):
            recorder.emit(_line(n))
        assert yields == []  # nothing in flight
        recorder.emit(_line(9))
        assert transport.sending.wait(10)
        for n in range(10, 10 + 4 * YIELD_EVERY):
            recorder.emit(_line(n))
        assert yields.count(0) == 4
        transport.go.set()
        assert recorder.flush(timeout=10)
        assert len(transport.logs) == 10 + 4 * YIELD_EVERY
    finally:
        transport.go.set()
        recorder.close()


class _Shipment:
    def __init__(self, transport: _DispatchingTransport, batch: Batch) -> None:
        self.transport = transport
        self.batch = batch

    def answered(self) -> bool:
        return True

    def finish(self) -> None:
        transport = self.transport
        transport.on_the_way -= 1
        transport.finished += 1
        if transport.finished in transport.fail_finish:
            raise ConnectionError("connection reset")
        MemoryTransport.send_batch(transport, self.batch)


class _DispatchingTransport(MemoryTransport):
    """Sends like ``ApiTransport.dispatch``: the batch lands when its answer is read."""

    def __init__(self, fail_dispatch: int = 0, fail_finish: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.fail_dispatch = fail_dispatch
        self.fail_finish = fail_finish
        self.dispatched_from: list[int] = []
        self.finished = 0
        self.on_the_way = 0
        self.most_on_the_way = 0
        self.flusher_batches = 0

    def dispatch(self, batch: Batch) -> _Shipment:
        self.dispatched_from.append(threading.get_ident())
        if len(self.dispatched_from) == self.fail_dispatch:
            raise ConnectionRefusedError("server down")
        self.on_the_way += 1
        self.most_on_the_way = max(self.most_on_the_way, self.on_the_way)
        return _Shipment(self, batch)

    def send_batch(self, batch: Batch) -> None:
        self.flusher_batches += 1
        super().send_batch(batch)


def _run_flow_and_emit(recorder: Recorder, count: int) -> None:
    """What a flow's thread does: start its run (so it ships its own records), emit."""
    from conveyor.states import Running

    recorder.propose_flow_run_state(uuid.uuid4(), Running())
    for n in range(count):
        recorder.emit(_line(n))


def test_a_flows_thread_ships_its_records_itself_one_batch_at_a_time() -> None:
    transport = _DispatchingTransport()
    recorder = Recorder(transport, flush_interval=60, stream_after=20)
    try:
        _run_flow_and_emit(recorder, 1_000)
        assert recorder.flush(timeout=10)
        assert [log.message for log in transport.logs] == [str(n) for n in range(1_000)]
        assert len(transport.dispatched_from) >= 10
        assert set(transport.dispatched_from) == {threading.get_ident()}
        assert transport.most_on_the_way == 1  # records stay in order
        assert transport.flusher_batches <= 1  # at most the rest, at the flush
    finally:
        recorder.close()


@pytest.mark.parametrize(
    ("fail_dispatch", "fail_finish"), [(2, ()), (0, (2,))], ids=["send fails", "answer fails"]
)
def test_a_batch_the_flows_thread_could_not_deliver_goes_to_the_flusher(
    fail_dispatch: int, fail_finish: tuple[int, ...]
) -> None:
    transport = _DispatchingTransport(fail_dispatch, fail_finish)
    recorder = Recorder(transport, flush_interval=60, stream_after=20)
    try:
        _run_flow_and_emit(recorder, 1_000)
        assert recorder.flush(timeout=10)
        # Nothing lost, nothing out of order: the failed batch went back to the front.
        assert [log.message for log in transport.logs] == [str(n) for n in range(1_000)]
        assert transport.flusher_batches >= 1
        # Once the flusher has delivered, the flow's thread ships again.
        dispatched = len(transport.dispatched_from)
        for n in range(1_000, 2_000):
            recorder.emit(_line(n))
        assert recorder.flush(timeout=10)
        assert [log.message for log in transport.logs] == [str(n) for n in range(2_000)]
        assert len(transport.dispatched_from) > dispatched
        assert set(transport.dispatched_from) == {threading.get_ident()}
    finally:
        recorder.close()


def test_other_threads_leave_shipping_to_the_flusher() -> None:
    transport = _DispatchingTransport()
    recorder = Recorder(transport, flush_interval=60, stream_after=20)
    try:
        from conveyor.states import Running

        recorder.propose_flow_run_state(uuid.uuid4(), Running())

        def work() -> None:
            for n in range(500):
                recorder.emit(_line(n))

        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
        assert recorder.flush(timeout=10)
        assert len(transport.logs) == 500
        assert transport.dispatched_from == []
        assert transport.flusher_batches >= 1
    finally:
        recorder.close()
