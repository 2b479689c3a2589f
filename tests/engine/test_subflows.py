"""Flows called inside flows (and tasks): child runs, their parents, and failures."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from conveyor import State, flow, get_run_context, get_run_logger, tags, task
from conveyor.client import MemoryTransport
from conveyor.engine.context import FlowRunContext


def current_flow_run_id() -> uuid.UUID:
    ctx = get_run_context()
    assert isinstance(ctx, FlowRunContext)
    return ctx.flow_run.id


@flow
def child(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x * 2


def test_a_flow_called_in_a_flow_is_a_child_run(transport: MemoryTransport) -> None:
    ids: dict[str, uuid.UUID] = {}

    @flow
    def inner() -> int:
        ids["child"] = current_flow_run_id()
        return 1

    @flow
    def outer() -> int:
        ids["parent"] = current_flow_run_id()
        return inner() + inner()

    assert outer() == 2
    assert len(transport.flow_runs) == 3
    runs = transport.flow_runs
    parent = runs[ids["parent"]]
    assert parent.parent_flow_run_id is None
    children = [r for r in runs.values() if r.flow_name == "inner"]
    assert len(children) == 2
    assert all(r.parent_flow_run_id == parent.id for r in children)
    assert all(r.parent_task_run_id is None for r in children)
    assert ids["child"] in runs
    for run_id in runs:
        assert [s.name for s in transport.flow_run_states[run_id]][-1] == "Completed"


def test_child_parameters_are_validated_and_recorded(transport: MemoryTransport) -> None:
    loose_child: Any = child  # a string where an int is annotated, coerced at run time

    @flow
    def outer() -> int:
        return int(loose_child("21"))

    assert outer() == 42
    (child_run,) = [r for r in transport.flow_runs.values() if r.flow_name == "child"]
    assert child_run.parameters == {"x": 21}


def test_a_child_failure_is_an_exception_the_parent_can_catch(
    transport: MemoryTransport,
) -> None:
    @flow
    def outer() -> str:
        try:
            child(-1)
        except ValueError as exc:
            return f"handled {exc}"
        return "not reached"

    assert outer() == "handled negative: -1"
    states = {
        run.flow_name: [s.name for s in transport.flow_run_states[run.id]]
        for run in transport.flow_runs.values()
    }
    assert states["child"][-1] == "Failed"
    assert states["outer"][-1] == "Completed"


def test_an_uncaught_child_failure_fails_the_parent() -> None:
    @flow
    def outer() -> int:
        return child(-5)

    state = outer(return_state=True)
    assert isinstance(state, State)
    assert state.is_failed()
    with pytest.raises(ValueError, match="negative: -5"):
        state.result()


def test_a_child_state_can_be_inspected_with_return_state() -> None:
    @flow
    def outer() -> str:
        state = child(-1, return_state=True)
        return f"{state.name}: {state.result(raise_on_failure=False)}"

    assert outer() == "Failed: negative: -1"


def test_tasks_of_a_child_belong_to_the_child_run(transport: MemoryTransport) -> None:
    @task
    def step() -> int:
        return 1

    @flow
    def inner() -> int:
        return step()

    @flow
    def outer() -> int:
        return step() + inner()

    assert outer() == 2
    flow_ids = {run.flow_name: run.id for run in transport.flow_runs.values()}
    owners = sorted(str(run.flow_run_id) for run in transport.task_runs.values())
    assert owners == sorted([str(flow_ids["outer"]), str(flow_ids["inner"])])


def test_a_flow_called_in_a_task_records_both_parents(transport: MemoryTransport) -> None:
    @task
    def launcher() -> int:
        return child(3)

    @flow
    def outer() -> int:
        return launcher()

    assert outer() == 6
    (task_run,) = transport.task_runs.values()
    (child_run,) = [r for r in transport.flow_runs.values() if r.flow_name == "child"]
    (outer_run,) = [r for r in transport.flow_runs.values() if r.flow_name == "outer"]
    assert child_run.parent_task_run_id == task_run.id
    assert child_run.parent_flow_run_id == outer_run.id


def test_subflows_share_the_parent_recorder_and_logs(transport: MemoryTransport) -> None:
    @flow
    def inner() -> None:
        get_run_logger().info("from the child")

    @flow
    def outer() -> None:
        inner()

    outer()
    (child_run,) = [r for r in transport.flow_runs.values() if r.flow_name == "inner"]
    (log,) = [log for log in transport.logs if log.message == "from the child"]
    assert log.flow_run_id == child_run.id


def test_subflows_inherit_tags_and_log_prints(transport: MemoryTransport) -> None:
    @flow
    def inner() -> None:
        print("child print")

    @flow(log_prints=True)
    def outer() -> None:
        with tags("child-tag"):
            inner()

    with tags("outer-tag"):
        outer()
    (child_run,) = [r for r in transport.flow_runs.values() if r.flow_name == "inner"]
    assert set(child_run.tags) == {"outer-tag", "child-tag"}
    (log,) = [log for log in transport.logs if log.message == "child print"]
    assert log.flow_run_id == child_run.id


def test_a_child_with_retries_retries_inside_the_parent() -> None:
    attempts: list[int] = []

    @flow(retries=2)
    def flaky_child() -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("again")
        return len(attempts)

    @flow
    def outer() -> int:
        return flaky_child()

    assert outer() == 3


def test_submitted_futures_can_feed_a_subflow() -> None:
    @task
    def produce() -> int:
        return 5

    @flow
    def outer() -> Any:
        return child(produce.submit().result())

    assert outer() == 10
