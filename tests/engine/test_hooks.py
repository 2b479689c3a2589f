"""State-change hooks of tasks and flows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conveyor import INPUTS, Flow, State, Task, flow, task
from conveyor.client import MemoryTransport
from conveyor.exceptions import ConfigurationError
from conveyor.schemas.runs import FlowRun, TaskRun
from conveyor.schemas.states import StateType


def final_state(fn: Flow[..., Any] | Task[..., Any], *args: Any, **kwargs: Any) -> State:
    state = fn(*args, return_state=True, **kwargs)
    assert isinstance(state, State)
    return state


class HookLog:
    """Hooks that record (hook name, first arg, run, state) for each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any, State]] = []

    def make(self, name: str) -> Any:
        def hook(obj: Any, run: Any, state: State) -> None:
            self.calls.append((name, obj, run, state))

        hook.__name__ = name
        return hook

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


# -- tasks -----------------------------------------------------------------------------
def test_task_hooks_on_success(transport: MemoryTransport) -> None:
    log = HookLog()

    @task(
        on_running=log.make("running"),
        on_completion=log.make("completion"),
        on_failure=log.make("failure"),
    )
    def good() -> int:
        return 1

    @flow
    def pipeline() -> int:
        return good()

    assert pipeline() == 1
    assert log.names() == ["running", "completion"]
    (task_run_id,) = transport.task_runs
    for _, obj, run, _ in log.calls:
        assert obj is good
        assert isinstance(run, TaskRun)
        assert run.id == task_run_id
    running_state, completed_state = log.calls[0][3], log.calls[1][3]
    assert running_state.type is StateType.RUNNING
    assert completed_state.is_completed()
    assert completed_state.result() == 1


def test_task_hooks_on_failure() -> None:
    log = HookLog()

    @task(on_completion=log.make("completion"), on_failure=log.make("failure"))
    def bad() -> None:
        raise ValueError("nope")

    @flow
    def pipeline() -> None:
        bad()

    final_state(pipeline)
    assert log.names() == ["failure"]
    state = log.calls[0][3]
    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), ValueError)


def test_task_on_failure_runs_once_after_the_last_retry() -> None:
    log = HookLog()

    @task(retries=2, on_running=log.make("running"), on_failure=log.make("failure"))
    def bad() -> None:
        raise ValueError("nope")

    @flow
    def pipeline() -> None:
        bad()

    final_state(pipeline)
    assert log.names() == ["running", "running", "running", "failure"]
    assert [c[3].name for c in log.calls[:3]] == ["Running", "Retrying", "Retrying"]


def test_task_hooks_of_a_cache_hit() -> None:
    log = HookLog()

    @task(
        cache_policy=INPUTS,
        on_running=log.make("running"),
        on_completion=log.make("completion"),
    )
    def cached(x: int) -> int:
        return x

    @flow
    def pipeline() -> None:
        cached(1)
        cached(1)

    pipeline()
    assert log.names() == ["running", "completion", "completion"]
    assert log.calls[-1][3].name == "Cached"


def test_hook_lists_run_in_order() -> None:
    log = HookLog()

    @task(on_completion=[log.make("first"), log.make("second")])
    def good() -> None:
        return None

    @flow
    def pipeline() -> None:
        good()

    pipeline()
    assert log.names() == ["first", "second"]


def test_a_raising_task_hook_is_logged_and_changes_nothing(
    conveyor_logs: pytest.LogCaptureFixture,
) -> None:
    log = HookLog()

    def broken_hook(obj: Any, run: Any, state: State) -> None:
        raise RuntimeError("hook bug")

    @task(on_completion=[broken_hook, log.make("after")])
    def good() -> int:
        return 1

    @flow
    def pipeline() -> int:
        return good()

    state = final_state(pipeline)
    assert state.is_completed()
    assert state.result() == 1
    assert log.names() == ["after"]  # later hooks still run
    (record,) = [r for r in conveyor_logs.records if "broken_hook" in r.getMessage()]
    assert record.levelname == "ERROR"
    assert record.exc_info is not None
    assert "state is unchanged" in record.getMessage()


def test_async_task_hooks() -> None:
    calls: list[str] = []

    async def async_hook(obj: Any, run: Any, state: State) -> None:
        await asyncio.sleep(0)
        calls.append(f"async:{state.name}")

    @task(on_completion=async_hook)
    def sync_task() -> None:
        return None

    @task(on_completion=async_hook, on_failure=async_hook)
    async def async_task(fail: bool) -> None:
        if fail:
            raise ValueError("x")

    @flow
    def pipeline() -> None:
        sync_task()
        async_task(False)  # type: ignore[unused-coroutine]  # runs to completion
        async_task.submit(True).wait()

    final_state(pipeline)
    assert calls == ["async:Completed", "async:Completed", "async:Failed"]


# -- flows -----------------------------------------------------------------------------
def test_flow_hooks_on_success(transport: MemoryTransport) -> None:
    log = HookLog()

    @flow(
        on_running=log.make("running"),
        on_completion=log.make("completion"),
        on_failure=log.make("failure"),
    )
    def pipeline() -> str:
        return "ok"

    assert pipeline() == "ok"
    assert log.names() == ["running", "completion"]
    (flow_run_id,) = transport.flow_runs
    for _, obj, run, _ in log.calls:
        assert obj is pipeline
        assert isinstance(run, FlowRun)
        assert run.id == flow_run_id
    assert log.calls[0][3].is_running()
    assert log.calls[1][3].result() == "ok"


def test_flow_hooks_on_failure() -> None:
    log = HookLog()

    @flow(on_completion=log.make("completion"), on_failure=log.make("failure"))
    def pipeline() -> None:
        raise ValueError("flow broke")

    with pytest.raises(ValueError):
        pipeline()
    assert log.names() == ["failure"]
    assert log.calls[0][3].is_failed()


def test_flow_on_failure_runs_once_after_retries() -> None:
    log = HookLog()

    @flow(retries=1, on_running=log.make("running"), on_failure=log.make("failure"))
    def pipeline() -> None:
        raise ValueError("flow broke")

    final_state(pipeline)
    assert log.names() == ["running", "running", "failure"]


def test_flow_on_crashed_hook() -> None:
    log = HookLog()

    class Stop(BaseException):
        pass

    @flow(on_crashed=log.make("crashed"), on_failure=log.make("failure"))
    def pipeline() -> None:
        raise Stop()

    with pytest.raises(Stop):
        pipeline()
    assert log.names() == ["crashed"]


def test_a_raising_flow_hook_is_logged_and_changes_nothing(
    conveyor_logs: pytest.LogCaptureFixture,
) -> None:
    def broken_hook(obj: Any, run: Any, state: State) -> None:
        raise RuntimeError("hook bug")

    @flow(on_completion=broken_hook, on_running=broken_hook)
    def pipeline() -> int:
        return 5

    state = final_state(pipeline)
    assert state.is_completed()
    assert state.result() == 5
    records = [r for r in conveyor_logs.records if "broken_hook" in r.getMessage()]
    assert len(records) == 2


def test_async_flow_hooks() -> None:
    calls: list[str] = []

    async def async_hook(obj: Any, run: Any, state: State) -> None:
        await asyncio.sleep(0)
        calls.append(f"{obj.name}:{state.name}")

    @flow(on_running=async_hook, on_completion=async_hook)
    async def async_flow() -> int:
        return 1

    @flow(on_completion=async_hook)
    def sync_flow() -> int:
        return 2

    assert asyncio.run(async_flow()) == 1
    assert sync_flow() == 2
    assert calls == ["async-flow:Running", "async-flow:Completed", "sync-flow:Completed"]


def test_hooks_must_be_callables() -> None:
    with pytest.raises(ConfigurationError, match="on_completion"):
        task(on_completion=[print, "nope"])(lambda: None)
    with pytest.raises(ConfigurationError, match="on_running"):
        flow(on_running=42)(lambda: None)


def test_with_options_replaces_hooks_and_keeps_the_original() -> None:
    log = HookLog()

    @task(on_completion=log.make("original"))
    def good() -> None:
        return None

    replaced = good.with_options(on_completion=[log.make("replaced")])

    @flow
    def pipeline() -> None:
        good()
        replaced()

    pipeline()
    assert log.names() == ["original", "replaced"]


def test_a_hook_error_is_recorded_with_its_run(transport: MemoryTransport) -> None:
    def broken_hook(obj: Any, run: Any, state: State) -> None:
        raise RuntimeError("hook bug")

    @task(on_completion=[broken_hook])
    def good() -> int:
        return 1

    @flow(on_completion=[broken_hook])
    def pipeline() -> int:
        return good()

    assert pipeline() == 1
    (task_run,) = transport.task_runs.values()
    (flow_run,) = transport.flow_runs.values()
    errors = [r for r in transport.logs if "broken_hook" in r.message]
    assert {(r.flow_run_id, r.task_run_id) for r in errors} == {
        (flow_run.id, task_run.id),
        (flow_run.id, None),
    }
    assert all("RuntimeError: hook bug" in r.message for r in errors)
