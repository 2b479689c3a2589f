"""Timeouts of tasks and flows, sync and async (see conveyor.engine.timeouts)."""

from __future__ import annotations

import asyncio
import datetime
import threading
import time
from typing import Any

import pytest

from conveyor import Flow, State, Task, flow, task
from conveyor.client import MemoryTransport
from conveyor.exceptions import FlowRunTimeoutError, TaskRunTimeoutError
from conveyor.schemas.states import StateType


def final_state(fn: Flow[..., Any] | Task[..., Any], *args: Any, **kwargs: Any) -> State:
    state = fn(*args, return_state=True, **kwargs)
    assert isinstance(state, State)
    return state


def assert_timed_out(state: State, error: type[Exception]) -> None:
    assert state.type is StateType.FAILED
    assert state.name == "TimedOut"
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, error)
    assert isinstance(exc, TimeoutError)
    assert "exceeded its timeout of 0.2 seconds" in str(exc)


# -- tasks -----------------------------------------------------------------------------
def test_a_sleeping_sync_task_times_out_promptly(transport: MemoryTransport) -> None:
    seen: list[State] = []

    @task(timeout_seconds=0.2)
    def sleeper() -> str:
        time.sleep(5)
        return "too late"

    @flow
    def pipeline() -> None:
        seen.append(final_state(sleeper))

    started = time.monotonic()
    pipeline()
    assert time.monotonic() - started < 1.5
    (state,) = seen
    assert_timed_out(state, TaskRunTimeoutError)
    (run_id,) = transport.task_runs
    assert transport.task_run_states[run_id][-1].state.name == "TimedOut"


def test_a_timed_out_task_call_raises_and_fails_the_flow() -> None:
    @task(timeout_seconds=0.2)
    def sleeper() -> None:
        time.sleep(5)

    @flow
    def pipeline() -> None:
        sleeper()

    started = time.monotonic()
    state = final_state(pipeline)
    assert time.monotonic() - started < 1.5
    assert state.is_failed()
    with pytest.raises(TaskRunTimeoutError):
        state.result()


def test_a_submitted_sync_task_times_out() -> None:
    @task(timeout_seconds=0.2)
    def sleeper() -> None:
        time.sleep(5)

    @flow
    def pipeline() -> State:
        future = sleeper.submit()
        future.wait()
        return future.state

    started = time.monotonic()
    state = final_state(pipeline)
    assert time.monotonic() - started < 1.5
    assert state.name == "TimedOut"


def test_a_standalone_task_times_out() -> None:
    @task(timeout_seconds=0.2)
    def sleeper() -> None:
        time.sleep(5)

    started = time.monotonic()
    state = final_state(sleeper)
    assert time.monotonic() - started < 1.5
    assert_timed_out(state, TaskRunTimeoutError)


def test_a_busy_loop_in_a_timed_out_sync_task_is_interrupted() -> None:
    stopped = threading.Event()
    spins: list[int] = [0]

    @task(timeout_seconds=0.2)
    def spin() -> None:
        try:
            while True:
                spins[0] += 1
        finally:
            stopped.set()

    @flow
    def pipeline() -> None:
        spin()

    started = time.monotonic()
    state = final_state(pipeline)
    assert time.monotonic() - started < 1.5
    assert isinstance(state.result(raise_on_failure=False), TaskRunTimeoutError)
    # The helper thread running the loop got a TimeoutError and stopped spinning.
    assert stopped.wait(2)
    count = spins[0]
    time.sleep(0.05)
    assert spins[0] == count


def test_an_async_task_is_cancelled_at_its_timeout() -> None:
    cancelled = threading.Event()

    @task(timeout_seconds=0.2)
    async def waiter() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    seen: list[State] = []

    @flow
    async def pipeline() -> None:
        seen.append(await waiter(return_state=True))

    started = time.monotonic()
    asyncio.run(pipeline())
    assert time.monotonic() - started < 1.5
    assert cancelled.is_set()
    (state,) = seen
    assert_timed_out(state, TaskRunTimeoutError)


def test_an_async_task_in_a_sync_flow_times_out() -> None:
    cancelled = threading.Event()

    @task(timeout_seconds=0.2)
    async def waiter() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    @flow
    def pipeline() -> None:
        waiter.submit().wait()

    started = time.monotonic()
    state = final_state(pipeline)
    assert time.monotonic() - started < 1.5
    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), TaskRunTimeoutError)
    assert cancelled.is_set()


def test_a_fast_task_within_its_timeout_completes() -> None:
    @task(timeout_seconds=datetime.timedelta(seconds=5))
    def quick(x: int) -> int:
        return x + 1

    assert quick.timeout_seconds == 5.0

    @flow
    def pipeline() -> int:
        return quick(1)

    assert pipeline() == 2


def test_an_exception_inside_the_timeout_is_the_task_failure() -> None:
    @task(timeout_seconds=5)
    def broken() -> None:
        raise KeyError("inner")

    state = final_state(broken)
    assert state.name == "Failed"
    assert isinstance(state.result(raise_on_failure=False), KeyError)


# -- flows -----------------------------------------------------------------------------
def test_a_sleeping_sync_flow_times_out(transport: MemoryTransport) -> None:
    @flow(timeout_seconds=0.2)
    def sleeper() -> None:
        time.sleep(5)

    started = time.monotonic()
    state = final_state(sleeper)
    assert time.monotonic() - started < 1.5
    assert_timed_out(state, FlowRunTimeoutError)
    (states,) = transport.flow_run_states.values()
    assert states[-1].name == "TimedOut"


def test_calling_a_timed_out_flow_raises_flow_run_timeout_error() -> None:
    @flow(timeout_seconds=0.2)
    def sleeper() -> None:
        time.sleep(5)

    with pytest.raises(FlowRunTimeoutError):
        sleeper()


def test_an_async_flow_is_cancelled_at_its_timeout() -> None:
    cancelled = threading.Event()

    @flow(timeout_seconds=0.2)
    async def waiter() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    started = time.monotonic()
    state = asyncio.run(waiter(return_state=True))
    assert time.monotonic() - started < 1.5
    assert isinstance(state, State)
    assert_timed_out(state, FlowRunTimeoutError)
    assert cancelled.is_set()


def test_a_flow_timeout_does_not_wait_for_its_running_tasks() -> None:
    @task
    def sleeper() -> None:
        time.sleep(2)

    @flow(timeout_seconds=0.2)
    def pipeline() -> None:
        sleeper.submit().wait()

    started = time.monotonic()
    state = final_state(pipeline)
    assert time.monotonic() - started < 1.5
    assert state.name == "TimedOut"


def test_a_timed_out_flow_with_retries_is_retried() -> None:
    attempts: list[int] = []

    @flow(timeout_seconds=0.2, retries=1)
    def slow_then_fast() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            time.sleep(2)
        return len(attempts)

    assert slow_then_fast() == 2
