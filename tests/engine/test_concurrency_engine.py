"""Concurrency limits in the engine: tag limits on task runs, ``concurrency`` and
``rate_limit``, against the embedded backend (a real database under a temp home)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from conveyor import (
    ProcessPoolTaskRunner,
    ThreadPoolTaskRunner,
    concurrency,
    flow,
    rate_limit,
    task,
)
from conveyor.client.transport import ApiTransport
from conveyor.exceptions import ConfigurationError


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def test_a_tag_limit_caps_concurrent_task_runs(backend: ApiTransport) -> None:
    backend.call(lambda client: client.set_concurrency_limit("db", 2))
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    @task(tags=["db"])
    def query(i: int) -> int:
        start = time.monotonic()
        time.sleep(0.2)
        with lock:
            spans.append((start, time.monotonic()))
        return i

    @flow(task_runner=ThreadPoolTaskRunner(6))
    def pipeline() -> list[int]:
        return [f.result() for f in query.map(range(6))]

    assert pipeline() == list(range(6))
    assert len(spans) == 6
    assert _max_overlap(spans) == 2
    limit = backend.call(lambda client: client.read_concurrency_limit("db"))
    assert limit.active_slots == 0


def test_a_tag_limit_holds_in_worker_processes_too(backend: ApiTransport) -> None:
    # The slots are taken inside each worker process, from the same backend.
    backend.call(lambda client: client.set_concurrency_limit("gpu", 1))

    @task(tags=["gpu"])
    def train(i: int) -> tuple[float, float]:
        start = time.time()
        time.sleep(0.3)
        return start, time.time()

    @flow(task_runner=ProcessPoolTaskRunner(3))
    def pipeline() -> list[tuple[float, float]]:
        return [f.result() for f in train.map(range(3))]

    spans = pipeline()
    assert len(spans) == 3
    assert _max_overlap(spans) == 1
    limit = backend.call(lambda client: client.read_concurrency_limit("gpu"))
    assert limit.active_slots == 0


def test_tasks_without_a_limited_tag_are_not_held_back(backend: ApiTransport) -> None:
    backend.call(lambda client: client.set_concurrency_limit("db", 0))

    @task(tags=["other"])
    def free() -> str:
        return "ran"

    @flow
    def pipeline() -> str:
        return free()

    assert pipeline() == "ran"


def test_concurrency_serialises_threads_with_a_limit_of_one(backend: ApiTransport) -> None:
    backend.call(lambda client: client.set_concurrency_limit("x", 1))
    spans: list[tuple[float, float]] = []

    def work() -> None:
        with concurrency("x", occupy=1):
            start = time.monotonic()
            time.sleep(0.1)
            spans.append((start, time.monotonic()))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(spans) == 4
    assert _max_overlap(spans) == 1


def test_concurrency_works_with_async_with(backend: ApiTransport) -> None:
    backend.call(lambda client: client.set_concurrency_limit("x", 1))

    async def main() -> int:
        async with concurrency("x"):
            limit = await asyncio.to_thread(
                backend.call, lambda client: client.read_concurrency_limit("x")
            )
            active: int = limit.active_slots
            return active

    assert asyncio.run(main()) == 1
    assert backend.call(lambda client: client.read_concurrency_limit("x")).active_slots == 0


def test_concurrency_times_out_when_no_slot_frees(backend: ApiTransport) -> None:
    backend.call(lambda client: client.set_concurrency_limit("x", 1))
    with concurrency("x"), pytest.raises(TimeoutError), concurrency("x", timeout_seconds=0.2):
        pass


def test_an_unknown_limit_is_a_configuration_error(backend: ApiTransport) -> None:
    with (
        pytest.raises(ConfigurationError, match="conveyor concurrency-limit create db N"),
        concurrency("db"),
    ):
        pass
    with pytest.raises(ConfigurationError, match="conveyor concurrency-limit create api N"):
        rate_limit("api")


def test_rate_limit_holds_slots_until_their_lease_expires(backend: ApiTransport) -> None:
    backend.call(lambda client: client.set_concurrency_limit("api", 2))
    rate_limit("api", ttl_seconds=1.0)
    rate_limit("api", ttl_seconds=1.0)
    assert backend.call(lambda client: client.read_concurrency_limit("api")).active_slots == 2
    started = time.monotonic()
    rate_limit("api", ttl_seconds=1.0)
    assert 0.5 < time.monotonic() - started < 3.0


def test_without_a_backend_there_are_no_limits() -> None:
    with concurrency("anything", occupy=5):
        rate_limit("anything")
