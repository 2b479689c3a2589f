"""The task-runner contract: the same behaviour from every runner.

Each test runs once per runner (sequential, threads, processes, Dask); see the ``runner``
fixture in conftest.py. Tasks come from ``tasks_for_runners`` so that process and Dask
workers can import them.
"""

from __future__ import annotations

import os
import pathlib
import uuid
from typing import Any

import pytest
from tasks_for_runners import (
    Boom,
    add,
    async_double,
    async_fail,
    describe,
    fail,
    fail_two_part,
    flaky,
    mark_and_return,
    nested_sum,
    numbers,
    process_id,
    read_file,
    wait_for_gate,
    write_after,
)

from conveyor import (
    ConveyorFuture,
    DaskTaskRunner,
    Flow,
    ProcessPoolTaskRunner,
    SequentialTaskRunner,
    State,
    TaskRunner,
    allow_failure,
    as_completed,
    flow,
    unmapped,
    wait,
)
from conveyor.client import MemoryTransport
from conveyor.engine.futures import FutureList
from conveyor.exceptions import ConfigurationError, UpstreamTaskError
from conveyor.schemas.runs import TaskRun, TaskRunInput

pytestmark = pytest.mark.timeout(60)


# -- helpers ------------------------------------------------------------------------------
def run_state(f: Flow[..., Any], *args: Any) -> State:
    """Run a flow and return its final state instead of its result."""
    state = f(*args, return_state=True)
    assert isinstance(state, State)
    return state


def history(transport: MemoryTransport, future: ConveyorFuture[Any]) -> list[str]:
    """The recorded state names of a task run, in order; checks the sequence is complete."""
    records = transport.task_run_states.get(future.task_run_id, [])
    assert [r.seq for r in records] == list(range(1, len(records) + 1)), records
    return [str(r.state.name) for r in records]


def recorded(transport: MemoryTransport, future: ConveyorFuture[Any]) -> TaskRun:
    return transport.task_runs[future.task_run_id]


def inputs(
    transport: MemoryTransport, future: ConveyorFuture[Any]
) -> set[tuple[uuid.UUID, str | None]]:
    return {(i.task_run_id, i.parameter) for i in recorded(transport, future).task_inputs}


def only_flow_run_id(transport: MemoryTransport) -> uuid.UUID:
    (flow_run_id,) = transport.flow_runs
    return flow_run_id


OK = ["Pending", "Running", "Completed"]


# -- results ------------------------------------------------------------------------------
def test_submit_and_map_return_results(runner: TaskRunner, transport: MemoryTransport) -> None:
    futures: dict[str, Any] = {}

    @flow(task_runner=runner)
    def arithmetic() -> dict[str, Any]:
        a = add.submit(1, 2)
        b = add.submit(a, 10)  # a future as an argument is replaced by its result
        pairs = add.map([1, 2, 3], [10, 20, 30])
        fixed = add.map([1, 2, 3], unmapped(100))
        scalar = add.map(y=[1, 2], x=5)  # a non-iterable argument is passed to every run
        over_future = add.map(numbers.submit(3), 1)  # mapping over an upstream's result
        futures.update(a=a, b=b, pairs=pairs)
        assert isinstance(pairs, FutureList)
        return {
            "a": a.result(),
            "b": b.result(),
            "pairs": pairs.result(),
            "fixed": [f.result() for f in fixed],
            "scalar": scalar.result(),
            "over_future": over_future.result(),
        }

    assert arithmetic() == {
        "a": 3,
        "b": 13,
        "pairs": [11, 22, 33],
        "fixed": [101, 102, 103],
        "scalar": [6, 7],
        "over_future": [1, 2, 3],
    }
    flow_run_id = only_flow_run_id(transport)
    assert len(transport.task_runs) == 2 + 3 + 3 + 2 + 1 + 3
    for task_run_id in transport.task_runs:
        states = transport.task_run_states[task_run_id]
        assert [r.state.name for r in states] == OK
        assert [r.seq for r in states] == [1, 2, 3]
        assert all(r.state.state_details.flow_run_id == flow_run_id for r in states)
        assert transport.task_runs[task_run_id].flow_run_id == flow_run_id
    a, b, pairs = futures["a"], futures["b"], futures["pairs"]
    assert inputs(transport, a) == set()
    assert inputs(transport, b) == {(a.task_run_id, "x")}
    assert [recorded(transport, f).map_index for f in pairs] == [0, 1, 2]


def test_map_rejects_iterables_of_different_lengths(
    runner: TaskRunner, transport: MemoryTransport
) -> None:
    @flow(task_runner=runner)
    def uneven() -> None:
        add.map([1, 2, 3], [1, 2])

    with pytest.raises(ConfigurationError, match="different lengths") as info:
        uneven()
    assert "'x': 3" in str(info.value)
    assert "'y': 2" in str(info.value)
    assert "unmapped" in str(info.value)
    assert transport.task_runs == {}  # nothing was submitted

    @flow(task_runner=runner)
    def nothing_to_map() -> None:
        add.map(1, unmapped([1, 2]))

    with pytest.raises(ConfigurationError, match="at least one iterable"):
        nothing_to_map()


def test_nested_futures_in_collections_are_resolved(
    runner: TaskRunner, transport: MemoryTransport
) -> None:
    futures: list[ConveyorFuture[Any]] = []

    @flow(task_runner=runner)
    def nested() -> tuple[int, int]:
        a, b, c = add.submit(1, 0), add.submit(2, 0), add.submit(3, 0)
        futures.extend([a, b, c])
        in_list = nested_sum.submit([a, [b, (c, 4)]])
        in_dict = nested_sum.submit({"a": a, "more": {"b": b, "list": [c, 10]}})
        futures.extend([in_list, in_dict])
        return in_list.result(), in_dict.result()

    assert nested() == (10, 16)
    a, b, c, in_list, in_dict = futures
    upstream = {(f.task_run_id, "values") for f in (a, b, c)}
    assert inputs(transport, in_list) == upstream
    assert inputs(transport, in_dict) == upstream
    assert history(transport, in_dict) == OK


def test_async_tasks(runner: TaskRunner, transport: MemoryTransport) -> None:
    futures: list[ConveyorFuture[Any]] = []

    @flow(task_runner=runner)
    def asynchronous() -> tuple[int, list[int], int]:
        one = async_double.submit(21)
        many = async_double.map([1, 2, 3])
        mixed = add.submit(one, many[2])  # a sync task fed by async ones
        broken = async_fail.submit("async boom")
        futures.extend([one, many[2], mixed, broken])
        with pytest.raises(Boom, match="async boom"):
            broken.result()
        return one.result(), many.result(), mixed.result()

    assert asynchronous() == (42, [2, 4, 6], 48)
    one, third, mixed, broken = futures
    assert history(transport, one) == OK
    assert history(transport, mixed) == OK
    assert history(transport, broken) == ["Pending", "Running", "Failed"]
    assert inputs(transport, mixed) == {(one.task_run_id, "x"), (third.task_run_id, "y")}


# -- failures and retries -------------------------------------------------------------------
def test_failing_task(runner: TaskRunner, transport: MemoryTransport) -> None:
    seen: dict[str, Any] = {}

    @flow(task_runner=runner)
    def handles_failure() -> str:
        future = fail.submit("boom")
        future.wait()
        seen["future"] = future
        seen["state"] = future.state
        try:
            future.result()
        except Boom as exc:
            seen["error"] = exc
            return "handled"
        return "not raised"

    state = run_state(handles_failure)
    # The task's error was looked at and swallowed, so the flow completed.
    assert state.is_completed(), state
    assert state.result() == "handled"
    task_state = seen["state"]
    assert task_state.is_failed()
    assert task_state.name == "Failed"
    assert "Boom: boom" in str(task_state.message)
    assert type(seen["error"]) is Boom
    assert str(seen["error"]) == "boom"
    returned = seen["future"].result(raise_on_failure=False)
    assert type(returned) is Boom
    assert history(transport, seen["future"]) == ["Pending", "Running", "Failed"]


def test_an_exception_that_cannot_be_rebuilt_still_fails_the_task(
    runner: TaskRunner, transport: MemoryTransport
) -> None:
    seen: list[ConveyorFuture[Any]] = []

    @flow(task_runner=runner)
    def raises_two_part() -> BaseException:
        future = fail_two_part.submit(400)
        seen.append(future)
        error: Any = future.result(raise_on_failure=False)  # the exception, not an int
        return error  # type: ignore[no-any-return]

    error = raises_two_part()
    # Failed, not Crashed: the task ran and raised. Across processes the exception
    # cannot be rebuilt, so a stand-in keeps its type name and message.
    assert "TwoPartError" in f"{type(error).__name__}: {error}"
    assert "400: bad request" in str(error)
    assert history(transport, seen[0]) == ["Pending", "Running", "Failed"]


def test_retries_use_a_file_as_the_attempt_counter(
    runner: TaskRunner, transport: MemoryTransport, tmp_path: pathlib.Path
) -> None:
    recovers, gives_up = tmp_path / "recovers", tmp_path / "gives-up"
    futures: list[ConveyorFuture[Any]] = []

    @flow(task_runner=runner)
    def retrying() -> int:
        ok = flaky.submit(str(recovers), 2)  # fails twice, succeeds on the third attempt
        bad = flaky.submit(str(gives_up), 5)  # retries=2: three attempts, all fail
        futures.extend([ok, bad])
        with pytest.raises(Boom, match="attempt 3 failed"):
            bad.result()
        return int(ok.result())

    assert retrying() == 3
    assert recovers.read_text() == "3"
    assert gives_up.read_text() == "3"
    ok, bad = futures
    attempts = ["Pending", "Running", "AwaitingRetry", "Retrying", "AwaitingRetry", "Retrying"]
    assert history(transport, ok) == [*attempts, "Completed"]
    assert history(transport, bad) == [*attempts, "Failed"]


def test_upstream_failure_and_allow_failure(
    runner: TaskRunner, transport: MemoryTransport, tmp_path: pathlib.Path
) -> None:
    direct, nested, chained, waited = (tmp_path / n for n in ("direct", "nested", "2nd", "wait"))
    futures: dict[str, ConveyorFuture[Any]] = {}

    @flow(task_runner=runner)
    def downstream_of_failure() -> dict[str, Any]:
        broken = fail.submit("upstream boom")
        fine = add.submit(1, 1)
        skipped = mark_and_return.submit(str(direct), broken)
        skipped_nested = mark_and_return.submit(str(nested), [fine, {"k": broken}])
        skipped_twice = mark_and_return.submit(str(chained), skipped)
        skipped_waiting = mark_and_return.submit(str(waited), 1, wait_for=[broken])
        allowed = describe.submit(allow_failure(broken))
        allowed_wait = add.submit(fine, 1, wait_for=[allow_failure(broken)])
        futures.update(
            broken=broken,
            skipped=skipped,
            skipped_nested=skipped_nested,
            skipped_twice=skipped_twice,
            skipped_waiting=skipped_waiting,
            allowed=allowed,
            allowed_wait=allowed_wait,
        )
        skips = (skipped, skipped_nested, skipped_twice, skipped_waiting)
        wait(skips)
        return {
            # Names, not the states: returning failed states would fail the flow.
            "names": [f.state.name for f in skips],
            "messages": [str(f.state.message) for f in skips],
            "error": skipped.result(raise_on_failure=False),
            "allowed": allowed.result(),
            "allowed_wait": allowed_wait.result(),
        }

    state = run_state(downstream_of_failure)
    # Every failure was looked at (used downstream or inspected), so the flow completed.
    assert state.is_completed(), state
    outcome = state.result()
    assert outcome["names"] == ["UpstreamFailed"] * 4
    assert all("did not run" in message for message in outcome["messages"])
    assert type(outcome["error"]) is UpstreamTaskError
    assert "allow_failure" in str(outcome["error"])
    for marker in (direct, nested, chained, waited):
        assert not marker.exists(), f"{marker.name} ran although its upstream failed"
    # With allow_failure the downstream runs and receives the exception itself.
    assert outcome["allowed"] == ("Boom", "upstream boom")
    assert outcome["allowed_wait"] == 3
    for name in ("skipped", "skipped_nested", "skipped_twice", "skipped_waiting"):
        assert history(transport, futures[name]) == ["Pending", "UpstreamFailed"], name
    assert history(transport, futures["allowed"]) == OK
    broken_id = futures["broken"].task_run_id
    assert inputs(transport, futures["skipped"]) == {(broken_id, "value")}
    assert inputs(transport, futures["skipped_waiting"]) == {(broken_id, None)}
    assert inputs(transport, futures["allowed"]) == {(broken_id, "value")}
    assert (broken_id, None) in inputs(transport, futures["allowed_wait"])


# -- ordering and waiting -------------------------------------------------------------------
def test_wait_for_orders_tasks_without_passing_data(
    runner: TaskRunner, transport: MemoryTransport, tmp_path: pathlib.Path
) -> None:
    path = str(tmp_path / "written-first")
    futures: list[ConveyorFuture[Any]] = []

    @flow(task_runner=runner)
    def ordered() -> str:
        # The writer takes a while, so a reader that did not wait would find no file.
        writer = write_after.submit(path, 0.2)
        reader = read_file.submit(path, wait_for=[writer])
        futures.extend([writer, reader])
        return str(reader.result())

    assert ordered() == "written"
    writer, reader = futures
    assert inputs(transport, reader) == {(writer.task_run_id, None)}
    assert history(transport, reader) == OK


def test_wait_and_as_completed(
    runner: TaskRunner, transport: MemoryTransport, tmp_path: pathlib.Path
) -> None:
    gate = tmp_path / "gate"
    sequential = isinstance(runner, SequentialTaskRunner)
    if sequential:
        gate.touch()  # a sequential runner finishes each task inside submit()

    @flow(task_runner=runner)
    def waiting() -> list[str]:
        fast = add.submit(1, 2)
        slow = wait_for_gate.submit(str(gate))
        fast.wait()
        done, not_done = wait([fast, slow], timeout=0.2)
        if sequential:
            assert (done, not_done) == ({fast, slow}, set())
        else:
            assert (done, not_done) == ({fast}, {slow})
            assert not slow.done()
            with pytest.raises(TimeoutError):
                list(as_completed([slow], timeout=0.1))
            with pytest.raises(TimeoutError):
                slow.result(timeout=0.05)
        order = []
        for future in as_completed([slow, fast], timeout=30):
            order.append(future)
            gate.touch()  # opened only after the fast one was reported
        if not sequential:
            assert order == [fast, slow]
        assert set(order) == {fast, slow}
        done, not_done = wait([fast, slow], timeout=30)
        assert (done, not_done) == ({fast, slow}, set())
        return [str(f.result()) for f in order if f is slow]

    assert waiting() == ["opened"]


def test_flow_run_ends_after_its_tasks_which_run_where_the_runner_says(
    runner: TaskRunner, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "late"

    @flow(task_runner=runner)
    def fire_and_forget() -> int:
        write_after.submit(str(path), 0.2)  # never waited on by the flow's code
        return int(process_id.submit().result())

    pid = fire_and_forget()
    assert path.read_text() == "written"  # the run waited for everything it submitted
    if isinstance(runner, ProcessPoolTaskRunner | DaskTaskRunner):
        assert pid != os.getpid()
    else:
        assert pid == os.getpid()


# -- the flow's final state -------------------------------------------------------------------
def test_flow_final_state_rules(runner: TaskRunner, transport: MemoryTransport) -> None:
    @flow(task_runner=runner)
    def ignores_failure() -> str:
        fail.submit("ignored boom")
        add.submit(1, 1)
        return "done"

    state = run_state(ignores_failure)
    assert state.is_failed(), state
    assert "'fail'" in str(state.message)
    with pytest.raises(Boom, match="ignored boom"):
        state.result()
    with pytest.raises(Boom, match="ignored boom"):
        ignores_failure()

    @flow(task_runner=runner)
    def swallows_failure() -> str:
        try:
            fail.submit("swallowed").result()
        except Boom:
            return "swallowed"
        return "not raised"

    assert swallows_failure() == "swallowed"

    @flow(task_runner=runner)
    def returns_futures() -> dict[str, Any]:
        a = add.submit(1, 2)
        return {"one": a, "many": add.map([1, 2], unmapped(10)), "plain": 7}

    assert returns_futures() == {"one": 3, "many": [11, 12], "plain": 7}

    @flow(task_runner=runner)
    def returns_one_future() -> Any:
        return add.submit(2, 2)

    assert returns_one_future() == 4

    @flow(task_runner=runner)
    def returns_failed_future() -> list[ConveyorFuture[Any]]:
        return [add.submit(1, 1), fail.submit("returned boom")]

    state = run_state(returns_failed_future)
    assert state.is_failed(), state
    with pytest.raises(Boom, match="returned boom"):
        state.result()

    # Every flow run got its own recorded history, ending in the state it returned.
    final = [states[-1].type.value for states in transport.flow_run_states.values()]
    assert final == ["FAILED", "FAILED", "COMPLETED", "COMPLETED", "COMPLETED", "FAILED"]


# -- records --------------------------------------------------------------------------------
def test_every_task_run_is_recorded_in_order(
    runner: TaskRunner, transport: MemoryTransport
) -> None:
    """Records made in worker processes travel home and arrive before the flow returns."""
    futures: list[ConveyorFuture[Any]] = []

    @flow(task_runner=runner)
    def pipeline() -> int:
        first = add.map([1, 2, 3, 4], unmapped(1))
        total = nested_sum.submit(first)  # a map's FutureList passed whole
        last = add.submit(total, 1, wait_for=[first[0]])
        futures.extend([*first, total, last])
        return int(last.result())

    state = run_state(pipeline)
    assert state.result() == 15
    # No flush needed here: a top-level flow run flushes its records before returning.
    flow_run_id = only_flow_run_id(transport)
    assert [s.name for s in transport.flow_run_states[flow_run_id]] == OK[1:]
    assert set(transport.task_runs) == {f.task_run_id for f in futures}
    for future in futures:
        assert history(transport, future) == OK
        run = recorded(transport, future)
        assert run.flow_run_id == flow_run_id
        assert run.name.startswith(future.task_name)
    *first, total, last = futures
    assert inputs(transport, total) == {(f.task_run_id, "values") for f in first}
    assert recorded(transport, last).task_inputs == [
        TaskRunInput(task_run_id=total.task_run_id, parameter="x"),
        TaskRunInput(task_run_id=first[0].task_run_id, parameter=None),
    ]
