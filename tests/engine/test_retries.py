"""Retries of tasks and flows: delays, jitter, retry conditions and recorded history."""

from __future__ import annotations

import asyncio
import time
import types
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor import Flow, State, Task, exponential_backoff, flow, get_run_context, task
from conveyor.client import MemoryTransport
from conveyor.engine import effects
from conveyor.engine.context import FlowRunContext, TaskRunContext
from conveyor.engine.options import delay_for_attempt
from conveyor.exceptions import ConfigurationError
from conveyor.schemas.runs import TaskRun
from conveyor.schemas.states import StateType


def final_state(fn: Flow[..., Any] | Task[..., Any], *args: Any, **kwargs: Any) -> State:
    state = fn(*args, return_state=True, **kwargs)
    assert isinstance(state, State)
    return state


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Record the engine's retry sleeps instead of sleeping, so long delays cost nothing."""
    slept: list[float] = []
    fake_time = types.SimpleNamespace(sleep=slept.append)
    monkeypatch.setattr(effects, "time", fake_time)
    yield slept


def flaky(failures: int) -> tuple[Task[[], str], list[int]]:
    """A task that fails ``failures`` times, then returns "ok"; and its run counts."""
    counts: list[int] = []

    @task(retries=5)
    def unreliable() -> str:
        ctx = get_run_context()
        assert isinstance(ctx, TaskRunContext)
        counts.append(ctx.run_count)
        if len(counts) <= failures:
            raise ConnectionError(f"attempt {len(counts)}")
        return "ok"

    return unreliable, counts


def task_history(transport: MemoryTransport, run_id: uuid.UUID) -> list[str | None]:
    return [r.state.name for r in transport.task_run_states[run_id]]


# -- task retries ----------------------------------------------------------------------
def test_a_task_is_retried_until_it_succeeds(transport: MemoryTransport) -> None:
    unreliable, counts = flaky(failures=2)

    @flow
    def pipeline() -> str:
        return unreliable()

    assert pipeline() == "ok"
    assert counts == [1, 2, 3]
    (run_id,) = transport.task_runs
    assert task_history(transport, run_id) == [
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "AwaitingRetry",
        "Retrying",
        "Completed",
    ]
    seqs = [r.seq for r in transport.task_run_states[run_id]]
    assert seqs == list(range(1, 8))


def test_a_task_fails_when_retries_run_out(transport: MemoryTransport) -> None:
    unreliable, counts = flaky(failures=10)
    limited = unreliable.with_options(retries=2)

    @flow
    def pipeline() -> str:
        return limited()

    with pytest.raises(ConnectionError, match="attempt 3"):
        pipeline()
    assert counts == [1, 2, 3]
    (run_id,) = transport.task_runs
    history = task_history(transport, run_id)
    assert history.count("AwaitingRetry") == 2
    assert history[-1] == "Failed"


def test_awaiting_retry_is_scheduled_after_the_delay(transport: MemoryTransport) -> None:
    unreliable, _ = flaky(failures=1)

    @flow
    def pipeline() -> str:
        return unreliable.with_options(retry_delay_seconds=0.05)()

    assert pipeline() == "ok"
    (run_id,) = transport.task_runs
    (waiting,) = [
        r.state for r in transport.task_run_states[run_id] if r.state.name == "AwaitingRetry"
    ]
    assert waiting.type is StateType.SCHEDULED
    scheduled = waiting.state_details.scheduled_time
    assert scheduled is not None
    assert 0.04 <= (scheduled - waiting.timestamp).total_seconds() <= 0.1
    assert "ConnectionError" in (waiting.message or "")


def test_per_attempt_delay_list_and_last_delay_repeats(sleeps: list[float]) -> None:
    unreliable, counts = flaky(failures=4)

    @flow
    def pipeline() -> str:
        return unreliable.with_options(retries=4, retry_delay_seconds=[1, 2.5, 7])()

    assert pipeline() == "ok"
    assert counts == [1, 2, 3, 4, 5]
    assert sleeps == [1.0, 2.5, 7.0, 7.0]


def test_a_single_delay_applies_to_every_retry(sleeps: list[float]) -> None:
    unreliable, _ = flaky(failures=3)

    @flow
    def pipeline() -> str:
        return unreliable.with_options(retries=3, retry_delay_seconds=3)()

    assert pipeline() == "ok"
    assert sleeps == [3.0, 3.0, 3.0]


def test_no_delay_means_no_sleep(sleeps: list[float]) -> None:
    unreliable, counts = flaky(failures=2)

    @flow
    def pipeline() -> str:
        return unreliable()

    assert pipeline() == "ok"
    assert counts == [1, 2, 3]
    assert sleeps == []


def test_exponential_backoff_doubles_from_the_factor(sleeps: list[float]) -> None:
    assert exponential_backoff(2)(4) == [2, 4, 8, 16]
    assert exponential_backoff(0.5)(3) == [0.5, 1.0, 2.0]

    unreliable, _ = flaky(failures=3)
    backing_off = unreliable.with_options(retries=3, retry_delay_seconds=exponential_backoff(2))
    assert backing_off.retry_delays == (2.0, 4.0, 8.0)

    @flow
    def pipeline() -> str:
        return backing_off()

    assert pipeline() == "ok"
    assert sleeps == [2.0, 4.0, 8.0]


def test_exponential_backoff_rejects_a_negative_factor() -> None:
    with pytest.raises(ConfigurationError, match="backoff_factor"):
        exponential_backoff(-1)


def test_jitter_stays_within_the_factor(sleeps: list[float]) -> None:
    unreliable, _ = flaky(failures=5)

    @flow
    def pipeline() -> str:
        return unreliable.with_options(
            retries=5, retry_delay_seconds=[10, 20], retry_jitter_factor=0.5
        )()

    assert pipeline() == "ok"
    assert len(sleeps) == 5
    assert 10 <= sleeps[0] <= 15
    for delay in sleeps[1:]:
        assert 20 <= delay <= 30


def test_jitter_samples_cover_the_range_and_never_leave_it() -> None:
    samples = [delay_for_attempt((4.0,), 1, 0.25) for _ in range(2000)]
    assert all(4.0 <= s <= 5.0 for s in samples)
    assert min(samples) < 4.1 and max(samples) > 4.9  # really random, not a constant
    assert delay_for_attempt((4.0,), 1, None) == 4.0
    assert delay_for_attempt((4.0,), 1, 0) == 4.0


def test_retry_condition_fn_false_stops_retries(transport: MemoryTransport) -> None:
    seen: list[tuple[Any, Any, State]] = []

    def only_connection_errors(t: Task[..., Any], run: TaskRun, state: State) -> bool:
        seen.append((t, run, state))
        return isinstance(state.result(raise_on_failure=False), ConnectionError)

    attempts: list[int] = []

    @task(retries=3, retry_condition_fn=only_connection_errors)
    def picky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("transient")
        raise ValueError("permanent")

    @flow
    def pipeline() -> None:
        picky()

    with pytest.raises(ValueError, match="permanent"):
        pipeline()
    assert len(attempts) == 2
    assert [type(s.result(raise_on_failure=False)) for _, _, s in seen] == [
        ConnectionError,
        ValueError,
    ]
    condition_task, run, state = seen[0]
    assert condition_task is picky
    assert isinstance(run, TaskRun)
    assert run.id in transport.task_runs
    assert state.is_failed()
    (run_id,) = transport.task_runs
    assert task_history(transport, run_id) == [
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "Failed",
    ]


def test_a_raising_retry_condition_fn_means_no_retry(
    conveyor_logs: pytest.LogCaptureFixture,
) -> None:
    def broken(t: Task[..., Any], run: TaskRun, state: State) -> bool:
        raise RuntimeError("condition bug")

    attempts: list[int] = []

    @task(retries=3, retry_condition_fn=broken)
    def once() -> None:
        attempts.append(1)
        raise ValueError("fail")

    @flow
    def pipeline() -> None:
        once()

    with pytest.raises(ValueError):
        pipeline()
    assert attempts == [1]
    assert any("retry_condition_fn" in r.getMessage() for r in conveyor_logs.records)


def test_timed_out_attempts_are_retried(transport: MemoryTransport) -> None:
    attempts: list[int] = []

    @task(retries=1, timeout_seconds=0.1)
    def slow_then_fast() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            time.sleep(1)
        return "fast"

    @flow
    def pipeline() -> str:
        return slow_then_fast()

    assert pipeline() == "fast"
    (run_id,) = transport.task_runs
    assert task_history(transport, run_id)[-3:] == ["AwaitingRetry", "Retrying", "Completed"]


def test_async_task_retries() -> None:
    attempts: list[int] = []

    @task(retries=2, retry_delay_seconds=0.01)
    async def unreliable() -> int:
        attempts.append(1)
        await asyncio.sleep(0)
        if len(attempts) < 3:
            raise ConnectionError("again")
        return len(attempts)

    @flow
    async def pipeline() -> int:
        return await unreliable()

    assert asyncio.run(pipeline()) == 3


def test_retries_of_a_submitted_task(transport: MemoryTransport) -> None:
    unreliable, counts = flaky(failures=1)

    @flow
    def pipeline() -> str:
        return unreliable.submit().result()

    assert pipeline() == "ok"
    assert counts == [1, 2]


# -- flow retries ----------------------------------------------------------------------
def test_flow_retries_rerun_the_flow_and_expose_run_count(transport: MemoryTransport) -> None:
    run_counts: list[int] = []

    @flow(retries=2)
    def flaky_flow() -> int:
        ctx = get_run_context()
        assert isinstance(ctx, FlowRunContext)
        run_counts.append(ctx.run_count)
        if ctx.run_count < 3:
            raise RuntimeError(f"attempt {ctx.run_count}")
        return ctx.run_count

    assert flaky_flow() == 3
    assert run_counts == [1, 2, 3]
    (flow_run_id,) = transport.flow_runs
    assert [s.name for s in transport.flow_run_states[flow_run_id]] == [
        "Running",
        "AwaitingRetry",
        "Retrying",
        "AwaitingRetry",
        "Retrying",
        "Completed",
    ]


def test_flow_retries_run_out(transport: MemoryTransport) -> None:
    attempts: list[int] = []

    @flow(retries=1)
    def always_fails() -> None:
        attempts.append(1)
        raise RuntimeError("again")

    state = final_state(always_fails)
    assert state.is_failed()
    assert attempts == [1, 1]
    (flow_run_id,) = transport.flow_runs
    names = [s.name for s in transport.flow_run_states[flow_run_id]]
    assert names == ["Running", "AwaitingRetry", "Retrying", "Failed"]


def test_flow_retry_delay(sleeps: list[float]) -> None:
    attempts: list[int] = []

    @flow(retries=2, retry_delay_seconds=30)
    def flaky_flow() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("again")
        return "ok"

    assert flaky_flow() == "ok"
    assert sleeps == [30.0, 30.0]


def test_flow_retry_reruns_its_tasks_as_new_task_runs(transport: MemoryTransport) -> None:
    @task
    def step() -> int:
        return 1

    @flow(retries=1)
    def flaky_flow() -> int:
        ctx = get_run_context()
        assert isinstance(ctx, FlowRunContext)
        value = step()
        if ctx.run_count == 1:
            raise RuntimeError("first attempt")
        return value

    assert flaky_flow() == 1
    assert len(transport.task_runs) == 2
    (flow_run_id,) = transport.flow_runs
    assert all(r.flow_run_id == flow_run_id for r in transport.task_runs.values())


def test_a_flow_retry_after_an_unhandled_task_failure(transport: MemoryTransport) -> None:
    calls: list[int] = []

    @task
    def sometimes() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first")

    @flow(retries=1)
    def pipeline() -> str:
        sometimes.submit()
        return "done"

    assert pipeline() == "done"
    assert calls == [1, 1]


def test_async_flow_retries() -> None:
    attempts: list[int] = []

    @flow(retries=1)
    async def flaky_flow() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("again")
        return len(attempts)

    assert asyncio.run(flaky_flow()) == 2
