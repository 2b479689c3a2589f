"""States: types, names, predicates, results and repr, and which states the engine makes."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable

import pytest

from conveyor import INPUTS, State, StateType, flow, task
from conveyor.client import MemoryTransport
from conveyor.schemas.states import (
    AwaitingRetry,
    Cached,
    Cancelled,
    Completed,
    Crashed,
    Failed,
    FailedRunError,
    Late,
    MissingResultError,
    Pending,
    Retrying,
    Running,
    Scheduled,
    TimedOut,
)


class Boom(BaseException):
    """Not an Exception: the kind of error that crashes a run rather than failing it."""


# -- constructors: type and name -------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "type_", "name"),
    [
        (Scheduled, StateType.SCHEDULED, "Scheduled"),
        (Late, StateType.SCHEDULED, "Late"),
        (AwaitingRetry, StateType.SCHEDULED, "AwaitingRetry"),
        (Pending, StateType.PENDING, "Pending"),
        (Running, StateType.RUNNING, "Running"),
        (Retrying, StateType.RUNNING, "Retrying"),
        (Completed, StateType.COMPLETED, "Completed"),
        (Cached, StateType.COMPLETED, "Cached"),
        (Failed, StateType.FAILED, "Failed"),
        (TimedOut, StateType.FAILED, "TimedOut"),
        (Crashed, StateType.CRASHED, "Crashed"),
        (Cancelled, StateType.CANCELLED, "Cancelled"),
    ],
)
def test_state_constructors_set_type_and_name(
    make: Callable[[], State], type_: StateType, name: str
) -> None:
    state = make()
    assert state.type is type_
    assert state.name == name
    assert state.timestamp.tzinfo is not None


def test_a_state_without_a_name_is_named_after_its_type() -> None:
    assert State(type=StateType.PAUSED).name == "Paused"
    assert Failed(name="UpstreamFailed").name == "UpstreamFailed"


def test_scheduled_states_carry_their_time() -> None:
    when = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    assert AwaitingRetry(scheduled_time=when).state_details.scheduled_time == when
    assert Scheduled().state_details.scheduled_time is not None


# -- predicates ------------------------------------------------------------------------
def test_predicates() -> None:
    assert Completed().is_completed() and Cached().is_completed()
    assert Failed().is_failed() and TimedOut().is_failed()
    assert Crashed().is_crashed()
    assert Cancelled().is_cancelled()
    assert Running().is_running() and Retrying().is_running()
    assert Pending().is_pending()
    assert AwaitingRetry().is_scheduled()
    assert not Completed().is_failed()
    assert not Failed().is_completed()
    assert not Cached().is_failed()


@pytest.mark.parametrize(
    ("state", "final"),
    [
        (Completed(), True),
        (Failed(), True),
        (Crashed(), True),
        (Cancelled(), True),
        (Pending(), False),
        (Running(), False),
        (AwaitingRetry(), False),
    ],
)
def test_is_final(state: State, final: bool) -> None:
    assert state.is_final() is final


# -- results ---------------------------------------------------------------------------
def test_result_of_a_completed_state_is_its_data() -> None:
    assert Completed(data={"a": 1}).result() == {"a": 1}
    assert Completed(data=None).result() is None
    assert Cached(data=3).result() == 3


def test_result_of_a_failed_state_raises_its_exception() -> None:
    error = ValueError("nope")
    with pytest.raises(ValueError, match="nope") as info:
        Failed(data=error).result()
    assert info.value is error


def test_result_raise_on_failure_false_returns_the_exception() -> None:
    error = ValueError("nope")
    assert Failed(data=error).result(raise_on_failure=False) is error
    crashed = Crashed(data=Boom("x"))
    assert isinstance(crashed.result(raise_on_failure=False), Boom)


def test_result_of_a_failed_state_without_an_exception_raises_with_its_message() -> None:
    with pytest.raises(FailedRunError, match="it broke"):
        Failed(message="it broke").result()
    error = Cancelled(message="stopped").result(raise_on_failure=False)
    assert isinstance(error, FailedRunError)
    assert "stopped" in str(error)


def test_result_of_a_final_state_with_nothing_to_return_explains_persistence() -> None:
    with pytest.raises(MissingResultError, match="persist_result"):
        Completed().result()


def test_result_of_a_non_final_state_is_missing() -> None:
    with pytest.raises(MissingResultError, match="not final"):
        Running().result()


# -- repr ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "text"),
    [
        (Completed(), "Completed()"),
        (Completed(data=5), "Completed()"),
        (Failed(message="boom"), "Failed('boom')"),
        (Cached(), "Cached(type=COMPLETED)"),
        (TimedOut(message="slow"), "TimedOut('slow', type=FAILED)"),
        (Retrying(), "Retrying(type=RUNNING)"),
        (Pending(), "Pending()"),
    ],
)
def test_repr(state: State, text: str) -> None:
    assert repr(state) == text
    assert str(state) == text


# -- the states the engine produces ----------------------------------------------------
def task_history(transport: MemoryTransport, task_name: str) -> list[tuple[StateType, str]]:
    (run,) = [r for r in transport.task_runs.values() if r.name.startswith(task_name)]
    return [(r.state.type, r.state.name or "") for r in transport.task_run_states[run.id]]


def test_engine_completed_and_failed(transport: MemoryTransport) -> None:
    @task
    def good() -> int:
        return 1

    @task
    def bad() -> int:
        raise ValueError("bad")

    @flow
    def pipeline() -> None:
        good.submit().wait()
        bad.submit().wait()

    state = pipeline(return_state=True)
    assert isinstance(state, State)
    assert state.is_failed()  # the failure of `bad` was never looked at
    assert task_history(transport, "good")[-1] == (StateType.COMPLETED, "Completed")
    assert task_history(transport, "bad")[-1] == (StateType.FAILED, "Failed")


def test_engine_cached(transport: MemoryTransport) -> None:
    seen: list[State] = []

    @task(cache_policy=INPUTS)
    def cached_value(x: int) -> int:
        return x

    @flow
    def pipeline() -> None:
        cached_value(1)
        seen.append(cached_value(1, return_state=True))

    pipeline()
    (state,) = seen
    assert state.type is StateType.COMPLETED
    assert state.name == "Cached"
    assert state.result() == 1


def test_engine_timed_out_awaiting_retry_and_retrying(transport: MemoryTransport) -> None:
    @task(timeout_seconds=0.05, retries=1)
    def slow() -> None:
        time.sleep(0.5)

    @flow
    def pipeline() -> None:
        slow.submit().wait()

    pipeline(return_state=True)
    assert task_history(transport, "slow") == [
        (StateType.PENDING, "Pending"),
        (StateType.RUNNING, "Running"),
        (StateType.SCHEDULED, "AwaitingRetry"),
        (StateType.RUNNING, "Retrying"),
        (StateType.FAILED, "TimedOut"),
    ]


def test_engine_upstream_failed(transport: MemoryTransport) -> None:
    @task
    def bad() -> int:
        raise ValueError("bad")

    @task
    def after(x: int) -> int:
        return x

    @flow
    def pipeline() -> None:
        after.submit(bad.submit()).wait()

    pipeline(return_state=True)
    assert task_history(transport, "after") == [
        (StateType.PENDING, "Pending"),
        (StateType.FAILED, "UpstreamFailed"),
    ]


def test_engine_crashed_for_a_base_exception(transport: MemoryTransport) -> None:
    seen: list[State] = []

    @task
    def crashes() -> None:
        raise Boom("hard stop")

    @flow
    def pipeline() -> None:
        future = crashes.submit()
        future.wait()
        seen.append(future.state)

    pipeline()
    (state,) = seen
    assert state.is_crashed()
    assert state.name == "Crashed"
    assert isinstance(state.result(raise_on_failure=False), Boom)
    assert task_history(transport, "crashes")[-1] == (StateType.CRASHED, "Crashed")


def test_engine_crashed_flow_reraises_the_base_exception(transport: MemoryTransport) -> None:
    @flow
    def crashing_flow() -> None:
        raise Boom("flow stop")

    with pytest.raises(Boom):
        crashing_flow()
    (states,) = transport.flow_run_states.values()
    assert states[-1].type is StateType.CRASHED
    assert states[-1].name == "Crashed"


def test_engine_cancelled_for_a_cancelled_async_task(transport: MemoryTransport) -> None:
    seen: list[State] = []

    @task
    async def cancelled() -> None:
        raise asyncio.CancelledError()

    @flow
    def pipeline() -> None:
        future = cancelled.submit()
        future.wait()
        seen.append(future.state)

    pipeline()
    (state,) = seen
    assert state.is_cancelled()
    assert state.name == "Cancelled"
    assert task_history(transport, "cancelled")[-1] == (StateType.CANCELLED, "Cancelled")


def test_engine_states_name_their_runs(transport: MemoryTransport) -> None:
    @task
    def good() -> int:
        return 1

    @flow
    def pipeline() -> int:
        return good()

    pipeline()
    (flow_run_id,) = transport.flow_runs
    (task_run_id,) = transport.task_runs
    for record in transport.task_run_states[task_run_id]:
        assert record.state.state_details.task_run_id == task_run_id
        assert record.state.state_details.flow_run_id == flow_run_id
    for state in transport.flow_run_states[flow_run_id]:
        assert state.state_details.flow_run_id == flow_run_id
