"""@task: decorating, calling, submitting, mapping, options and their validation."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from conveyor import (
    INPUTS,
    ConveyorFuture,
    State,
    Task,
    allow_failure,
    flow,
    get_run_context,
    task,
    unmapped,
)
from conveyor.client import MemoryTransport
from conveyor.engine.context import TaskRunContext
from conveyor.exceptions import ConfigurationError, NotInFlowError, UpstreamTaskError


def final_state(fn: Task[..., Any], *args: Any, **kwargs: Any) -> State:
    state = fn(*args, return_state=True, **kwargs)
    assert isinstance(state, State)
    return state


@task
def double(x: int) -> int:
    return x * 2


@task
def add(x: int, y: int = 0) -> int:
    return x + y


@task
def explode(message: str = "exploded") -> int:
    raise ValueError(message)


# -- decorating ------------------------------------------------------------------------
def test_bare_decorator_makes_a_task_named_after_the_function() -> None:
    assert isinstance(double, Task)
    assert double.name == "double"
    assert double.task_key.endswith("test_tasks.double")
    assert repr(double) == "Task('double')"


def test_decorator_with_options_keeps_them() -> None:
    @task(name="fetch", tags=["io", "net"], version="2", retries=3, retry_delay_seconds=[1, 2])
    def fetch_data() -> str:
        """Fetches."""
        return "data"

    assert fetch_data.name == "fetch"
    assert fetch_data.tags == frozenset({"io", "net"})
    assert fetch_data.version == "2"
    assert fetch_data.retries == 3
    assert fetch_data.retry_delays == (1.0, 2.0)
    assert fetch_data.description == "Fetches."


def test_task_called_in_a_flow_returns_its_result() -> None:
    @flow
    def pipeline(n: int) -> int:
        return add(double(n), y=1)

    assert pipeline(5) == 11


def test_task_called_outside_a_flow_runs_directly() -> None:
    assert double(4) == 8
    state = final_state(double, 4)
    assert state.is_completed()
    assert state.result() == 8


def test_task_calls_are_recorded_as_task_runs_of_the_flow_run(transport: MemoryTransport) -> None:
    @flow
    def pipeline() -> int:
        return double(1) + double(2)

    assert pipeline() == 6
    (flow_run_id,) = transport.flow_runs
    runs = sorted(transport.task_runs.values(), key=lambda r: int(r.dynamic_key))
    assert [r.name for r in runs] == ["double-0", "double-1"]
    assert all(r.flow_run_id == flow_run_id for r in runs)
    for run in runs:
        assert transport.task_run_state_types(run.id) == ["PENDING", "RUNNING", "COMPLETED"]


def test_task_run_name_template(transport: MemoryTransport) -> None:
    @task(task_run_name="greet-{who}")
    def greet(who: str) -> str:
        return f"hi {who}"

    @flow
    def pipeline() -> str:
        return greet("ada")

    assert pipeline() == "hi ada"
    (run,) = transport.task_runs.values()
    assert run.name == "greet-ada"


def test_task_run_context_is_visible_inside_the_task() -> None:
    @task
    def who_am_i() -> str:
        ctx = get_run_context()
        assert isinstance(ctx, TaskRunContext)
        assert ctx.run_count == 1
        return ctx.task_run.name

    @flow
    def pipeline() -> str:
        return who_am_i()

    assert pipeline() == "who_am_i-0"


def test_return_state_inside_a_flow_hands_back_states_and_never_raises() -> None:
    seen: dict[str, State] = {}

    @flow
    def pipeline() -> str:
        seen["ok"] = final_state(double, 2)
        seen["bad"] = final_state(explode, "inside")
        return "done"

    assert pipeline() == "done"
    assert seen["ok"].is_completed()
    assert seen["ok"].result() == 4
    assert seen["bad"].is_failed()
    assert str(seen["bad"].result(raise_on_failure=False)) == "inside"


def test_a_failing_task_call_raises_its_exception() -> None:
    @flow
    def pipeline() -> int:
        return explode("kaboom")

    with pytest.raises(ValueError, match="kaboom"):
        pipeline()


def test_a_task_can_call_a_task() -> None:
    @task
    def outer(x: int) -> int:
        return double(x) + 1

    @flow
    def pipeline() -> int:
        return outer(3)

    assert pipeline() == 7


# -- submit and map --------------------------------------------------------------------
def test_submit_returns_a_future_with_the_result() -> None:
    @flow
    def pipeline() -> list[int]:
        futures = [double.submit(i) for i in range(5)]
        assert all(isinstance(f, ConveyorFuture) for f in futures)
        return [f.result() for f in futures]

    assert pipeline() == [0, 2, 4, 6, 8]


def test_futures_can_feed_other_tasks_and_record_dependencies(
    transport: MemoryTransport,
) -> None:
    @flow
    def pipeline() -> int:
        first = double.submit(3)
        second = add.submit(first, y=first)
        return second.result()

    assert pipeline() == 12
    by_name = {r.name: r for r in transport.task_runs.values()}
    inputs = by_name["add-0"].task_inputs
    assert {i.parameter for i in inputs} == {"x", "y"}
    assert {i.task_run_id for i in inputs} == {by_name["double-0"].id}


def test_wait_for_orders_runs_without_passing_data(transport: MemoryTransport) -> None:
    order: list[str] = []

    @task
    def first() -> None:
        order.append("first")

    @task
    def second() -> None:
        order.append("second")

    @flow
    def pipeline() -> None:
        f = first.submit()
        second.submit(wait_for=[f]).result()

    pipeline()
    assert order == ["first", "second"]
    by_name = {r.name: r for r in transport.task_runs.values()}
    (dependency,) = by_name["second-0"].task_inputs
    assert dependency.parameter is None
    assert dependency.task_run_id == by_name["first-0"].id


def test_map_submits_one_run_per_element() -> None:
    @flow
    def pipeline() -> list[int]:
        return add.map([1, 2, 3], y=unmapped(10)).result()

    assert pipeline() == [11, 12, 13]


def test_map_with_several_iterables_zips_them(transport: MemoryTransport) -> None:
    @flow
    def pipeline() -> list[int]:
        return add.map([1, 2], [10, 20]).result()

    assert pipeline() == [11, 22]
    assert sorted(r.map_index for r in transport.task_runs.values() if r.map_index is not None) == [
        0,
        1,
    ]


def test_map_rejects_iterables_of_different_lengths() -> None:
    @flow
    def pipeline() -> None:
        add.map([1, 2], [1])

    with pytest.raises(ConfigurationError, match="different lengths"):
        pipeline()


def test_map_needs_an_iterable() -> None:
    @flow
    def pipeline() -> None:
        add.map(1, 2)

    with pytest.raises(ConfigurationError, match="iterable"):
        pipeline()


def test_submit_outside_a_flow_raises_not_in_flow() -> None:
    with pytest.raises(NotInFlowError, match=r"double.submit\(\)"):
        double.submit(1)


def test_map_outside_a_flow_raises_not_in_flow() -> None:
    with pytest.raises(NotInFlowError, match=r"double.map\(\)"):
        double.map([1, 2])


def test_not_in_flow_error_is_a_runtime_error() -> None:
    assert issubclass(NotInFlowError, RuntimeError)


# -- upstream failures -----------------------------------------------------------------
def test_a_task_whose_upstream_failed_does_not_run(transport: MemoryTransport) -> None:
    ran: list[int] = []

    @task
    def downstream(x: int) -> None:
        ran.append(x)

    @flow
    def pipeline() -> State:
        return final_state(downstream, explode.submit())

    state = pipeline.with_options(name="pipeline")(return_state=True)
    assert isinstance(state, State)
    assert ran == []
    by_name = {r.name: r for r in transport.task_runs.values()}
    history = [r.state.name for r in transport.task_run_states[by_name["downstream-0"].id]]
    assert history == ["Pending", "UpstreamFailed"]
    error = state.result(raise_on_failure=False)
    assert isinstance(error, UpstreamTaskError)
    assert "'explode'" in str(error)
    assert "allow_failure" in str(error)


def test_allow_failure_runs_the_downstream_task_with_the_exception() -> None:
    @task
    def describe(value: Any) -> str:
        return f"{type(value).__name__}: {value}"

    @flow
    def pipeline() -> str:
        return describe(allow_failure(explode.submit("expected")))

    assert pipeline() == "ValueError: expected"


# -- with_options ----------------------------------------------------------------------
def test_with_options_returns_a_changed_copy_and_leaves_the_original_alone() -> None:
    copy = double.with_options(name="twice", retries=2, tags=["x"])
    assert isinstance(copy, Task)
    assert copy is not double
    assert (copy.name, copy.retries, copy.tags) == ("twice", 2, frozenset({"x"}))
    assert (double.name, double.retries, double.tags) == ("double", 0, frozenset())
    assert copy.fn is double.fn
    assert copy(2) == 4


def test_with_options_can_swap_cache_policy_for_cache_key_fn() -> None:
    cached = double.with_options(cache_policy=INPUTS)
    keyed = cached.with_options(cache_key_fn=lambda ctx, inputs: "k")
    assert keyed.cache_key_fn is not None
    assert cached.cache_policy is INPUTS


def test_with_options_rejects_unknown_options_by_name() -> None:
    with pytest.raises(ConfigurationError, match="'unknown'"):
        double.with_options(unknown=1)


# -- bad configuration -----------------------------------------------------------------
def test_task_on_a_non_callable_says_to_decorate_a_function() -> None:
    not_a_function: Any = "double"
    with pytest.raises(TypeError, match="decorate a function"):
        task(not_a_function)


def test_task_with_a_function_and_options_is_rejected() -> None:
    def fn() -> None:
        return None

    with pytest.raises(TypeError, match="@task"):
        task(fn, retries=1)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"retries": -1}, "retries"),
        ({"retries": "3"}, "retries"),
        ({"retries": None}, "retries"),
        ({"retry_delay_seconds": -1}, "retry_delay_seconds"),
        ({"retry_delay_seconds": ["a"]}, "retry_delay_seconds"),
        ({"retry_delay_seconds": [1, -1]}, "retry_delay_seconds"),
        ({"retry_delay_seconds": []}, "retry_delay_seconds"),
        ({"retry_jitter_factor": -1}, "retry_jitter_factor"),
        ({"retry_jitter_factor": "big"}, "retry_jitter_factor"),
        ({"retry_condition_fn": 3}, "retry_condition_fn"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": datetime.timedelta(0)}, "timeout_seconds"),
        ({"timeout_seconds": "5"}, "timeout_seconds"),
        ({"cache_expiration": 5}, "cache_expiration"),
        ({"cache_policy": "x"}, "cache_policy"),
        ({"cache_policy": INPUTS, "cache_key_fn": lambda c, i: "k"}, "cache_policy"),
        ({"cache_key_fn": "not callable"}, "cache_key_fn"),
        ({"result_serializer": "yaml"}, "serializer"),
        ({"result_storage_key": "k", "persist_result": False}, "result_storage_key"),
        ({"cache_policy": INPUTS, "persist_result": False}, "persisted"),
        ({"refresh_cache": "yes"}, "refresh_cache"),
        ({"tags": "one-string"}, "tags"),
        ({"on_failure": [1]}, "on_failure"),
        ({"task_run_name": 1}, "task_run_name"),
    ],
)
def test_bad_task_options_raise_configuration_errors_naming_the_option(
    options: dict[str, Any], named: str
) -> None:
    def fn() -> None:
        return None

    with pytest.raises(ConfigurationError, match=named):
        task(**options)(fn)


def test_unknown_serializer_error_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match="cloudpickle") as info:
        task(result_serializer="yaml")(lambda: None)
    assert "'yaml'" in str(info.value)


def test_bad_options_are_rejected_at_decoration_not_at_run_time() -> None:
    calls: list[int] = []

    def fn() -> None:
        calls.append(1)

    with pytest.raises(ConfigurationError):
        task(retries=-1)(fn)
    assert calls == []


def test_calling_a_task_with_wrong_arguments_raises_type_error() -> None:
    with pytest.raises(TypeError, match="y"):
        add(1, y=2, z=3)  # type: ignore[call-overload]


def test_tasks_with_var_positional_keyword_and_positional_only_parameters() -> None:
    @task
    def total(first: int, /, *rest: int, scale: int = 1, **named: int) -> int:
        return (first + sum(rest) + sum(named.values())) * scale

    @flow
    def pipeline() -> list[int]:
        return [
            total(1, 2, 3),
            total(1, 2, scale=2, extra=4),
            total.submit(1, 2, 3).result(),
            *total.map([1, 2], scale=unmapped(10)).result(),
        ]

    assert pipeline() == [6, 14, 6, 10, 20]
