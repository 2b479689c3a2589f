"""The batching recorder: streams once enough is queued, ships the rest on flush."""

from __future__ import annotations

import datetime
import time
import uuid

from conveyor.client.recorder import MemoryTransport, Recorder
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
