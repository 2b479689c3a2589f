"""Behaviour particular to one runner, and bad configuration or inputs: each a clear error."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from tasks_for_runners import add, async_sleep, die, identity, make_generator, make_lock, process_id

from conveyor import (
    DaskTaskRunner,
    Flow,
    ProcessPoolTaskRunner,
    State,
    TaskRunner,
    ThreadPoolTaskRunner,
    flow,
    get_run_context,
    wait,
)
from conveyor.client import MemoryTransport
from conveyor.engine.context import FlowRunContext
from conveyor.exceptions import ConfigurationError, SerializationError, TaskRunnerError

pytestmark = pytest.mark.timeout(60)


def run_state(f: Flow[..., Any], *args: Any) -> State:
    state = f(*args, return_state=True)
    assert isinstance(state, State)
    return state


def current_runner() -> TaskRunner:
    context = get_run_context()
    assert isinstance(context, FlowRunContext)
    return context.task_runner


# -- configuration ------------------------------------------------------------------------
@pytest.mark.parametrize("runner_class", [ThreadPoolTaskRunner, ProcessPoolTaskRunner])
@pytest.mark.parametrize("bad", [0, -1, "x", 2.5, True])
def test_max_workers_must_be_a_positive_whole_number(
    runner_class: Callable[..., TaskRunner], bad: Any
) -> None:
    with pytest.raises(ConfigurationError, match="max_workers must be a whole number") as info:
        runner_class(max_workers=bad)
    assert repr(bad) in str(info.value)
    assert runner_class.__name__ in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"address": 8786}, "address must be a string"),
        (
            {"address": "tcp://127.0.0.1:8786", "cluster_kwargs": {"n_workers": 1}},
            "not both",
        ),
        ({"cluster_class": 3}, "cluster_class must be a class"),
        ({"cluster_kwargs": ["n_workers"]}, "cluster_kwargs must be a dict"),
    ],
)
def test_dask_runner_rejects_bad_configuration(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        DaskTaskRunner(**kwargs)


def test_dask_runner_with_a_bad_cluster_class_fails_when_the_flow_starts() -> None:
    @flow(task_runner=DaskTaskRunner(cluster_class="no_such_module.Cluster"))
    def never_runs() -> None:
        raise AssertionError("the flow body ran without a task runner")

    with pytest.raises(ConfigurationError, match=r"no_such_module\.Cluster"):
        never_runs()


# -- Dask -----------------------------------------------------------------------------------
def test_unreachable_dask_scheduler_fails_the_flow_at_start_quickly(
    transport: MemoryTransport,
) -> None:
    address = "tcp://127.0.0.1:1"  # nothing listens on port 1
    ran: list[bool] = []

    @flow(task_runner=DaskTaskRunner(address=address))
    def needs_cluster() -> None:
        ran.append(True)

    started = time.monotonic()
    with pytest.raises(TaskRunnerError, match=address) as info:
        needs_cluster()
    assert time.monotonic() - started < 15
    assert "Could not connect to the Dask scheduler" in str(info.value)
    assert ran == []
    # The run is not left Running: it ends Failed, with the reason.
    (states,) = transport.flow_run_states.values()
    assert [s.name for s in states] == ["Running", "Failed"]
    assert address in str(states[-1].message)


def test_dask_runner_without_address_uses_a_temporary_cluster() -> None:
    seen: dict[str, Any] = {}
    template = DaskTaskRunner(cluster_kwargs={"n_workers": 1, "processes": False})

    @flow(task_runner=template)
    def on_temporary_cluster() -> int:
        runner = current_runner()
        assert isinstance(runner, DaskTaskRunner)
        assert runner is not template
        client = runner.client
        seen["cluster"] = client.cluster
        seen["workers"] = len(client.scheduler_info()["workers"])
        seen["pid"] = process_id.submit().result()  # processes=False: in this process
        return int(add.submit(add.submit(1, 2), 3).result())

    assert on_temporary_cluster() == 6
    assert seen["workers"] == 1
    assert seen["pid"] == os.getpid()
    assert str(seen["cluster"].status.name) == "closed"  # closed when the flow run ended


# -- values that cannot travel between processes -----------------------------------------
@pytest.mark.parametrize("runner_name", ["processes", "dask"])
def test_unpicklable_result_fails_the_task_with_a_serialization_error(
    runner_name: str, make_runner: Callable[[str], TaskRunner], transport: MemoryTransport
) -> None:
    @flow(task_runner=make_runner(runner_name))
    def returns_unpicklable() -> int:
        generator, lock = make_generator.submit(3), make_lock.submit()
        wait([generator, lock])
        assert generator.state.is_failed()  # looked at, so the flow is not failed for it
        assert lock.state.is_failed()
        return int(add.submit(1, 2).result())  # one bad result does not break the runner

    state = run_state(returns_unpicklable)
    assert state.is_completed(), state
    recorded = {
        run.task_key.rsplit(".", 1)[-1]: [r.state for r in transport.task_run_states[run.id]]
        for run in transport.task_runs.values()
    }
    for task_name in ("make_generator", "make_lock"):
        states = recorded[task_name]
        assert [s.name for s in states] == ["Pending", "Running", "Failed"], task_name
        final = states[-1]
        assert "cannot be pickled" in str(final.message)
        assert task_name in str(final.message)


def test_unpicklable_result_raises_serialization_error_from_result(
    make_runner: Callable[[str], TaskRunner],
) -> None:
    @flow(task_runner=make_runner("processes"))
    def returns_generator() -> None:
        future = make_generator.submit(3)
        with pytest.raises(SerializationError, match="cannot be pickled") as info:
            future.result()
        assert "generator" in str(info.value)
        assert future.final_state().is_failed()

    returns_generator()


@pytest.mark.parametrize("runner_name", ["processes", "dask"])
def test_unpicklable_argument_fails_the_task_clearly(
    runner_name: str, make_runner: Callable[[str], TaskRunner]
) -> None:
    @flow(task_runner=make_runner(runner_name))
    def passes_a_lock() -> str:
        future = identity.submit(threading.Lock())
        state = future.final_state()
        assert state.is_failed(), state
        with pytest.raises(SerializationError) as info:
            future.result()
        message = str(info.value)
        assert "'identity' could not be sent to a worker" in message
        assert "cannot be pickled" in message
        assert "lock" in message
        return "handled"

    assert passes_a_lock() == "handled"


# -- a worker that dies ---------------------------------------------------------------------
def test_a_dead_worker_process_crashes_its_task_and_the_flow_finishes(
    transport: MemoryTransport,
) -> None:
    @flow(task_runner=ProcessPoolTaskRunner(max_workers=2))
    def kills_a_worker() -> dict[str, Any]:
        doomed = die.submit(1)
        state = doomed.final_state()
        doomed.mark_observed()
        after = add.submit(1, 2)  # the runner replaces the broken pool
        return {
            "type": state.type.value,
            "message": str(state.message),
            "after": after.result(),
            "id": doomed.task_run_id,
        }

    state = run_state(kills_a_worker)
    assert state.is_completed(), state
    outcome = state.result()
    assert outcome["type"] == "CRASHED"
    assert "worker" in outcome["message"]
    assert outcome["after"] == 3
    assert transport.task_run_states[outcome["id"]][-1].state.name == "Crashed"

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def ignores_dead_worker() -> str:
        die.submit(1)
        return "returned"

    # A crash nobody looked at fails the flow: it is never dropped silently.
    assert run_state(ignores_dead_worker).is_failed()


# -- threads ----------------------------------------------------------------------------------
def test_thread_runner_runs_async_tasks_concurrently() -> None:
    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def sleepers() -> list[float]:
        return list(async_sleep.map([0.2] * 10).result())

    started = time.monotonic()
    assert sleepers() == [0.2] * 10
    # Ten 0.2 s sleeps one after another would take 2 s; together they take ~0.2 s.
    assert time.monotonic() - started < 1.0


# -- one flow object, many runs -------------------------------------------------------------
@pytest.mark.parametrize("runner_name", ["sequential", "threads", "processes", "dask"])
def test_a_flow_runs_twice_and_concurrently_with_a_fresh_runner_each_time(
    runner_name: str, make_runner: Callable[[str], TaskRunner]
) -> None:
    template = make_runner(runner_name)
    runners: list[TaskRunner] = []
    lock = threading.Lock()
    barrier = threading.Barrier(2, timeout=20)
    concurrent = threading.Event()

    @flow(task_runner=template)
    def reusable(x: int) -> int:
        with lock:
            runners.append(current_runner())
        first = add.submit(x, 1)
        if concurrent.is_set():
            barrier.wait()  # both runs are inside the flow, each with its own runner
        second = add.submit(first, 1)
        if concurrent.is_set():
            barrier.wait()  # and both submitted work before either one finishes
        return int(second.result())

    assert reusable(1) == 3
    assert reusable(10) == 12

    concurrent.set()
    results: dict[int, Any] = {}

    def run_in_thread(x: int) -> None:
        try:
            results[x] = reusable(x)
        except BaseException as exc:  # noqa: BLE001 - checked by the test below
            results[x] = exc

    threads = [threading.Thread(target=run_in_thread, args=(x,)) for x in (100, 200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == {100: 102, 200: 202}
    assert len(runners) == 4
    assert len({id(r) for r in runners}) == 4
    assert all(r is not template and type(r) is type(template) for r in runners)
