"""@flow: decorating, calling, options, with_options, and the final flow state rules."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from conveyor import (
    Flow,
    State,
    StateType,
    Task,
    allow_failure,
    flow,
    get_run_context,
    task,
)
from conveyor.client import MemoryTransport
from conveyor.engine.context import FlowRunContext
from conveyor.exceptions import ConfigurationError, UpstreamTaskError
from conveyor.schemas.states import Completed, Failed


def final_state(fn: Flow[..., Any] | Task[..., Any], *args: Any, **kwargs: Any) -> State:
    state = fn(*args, return_state=True, **kwargs)
    assert isinstance(state, State)
    return state


def only_flow_run_states(transport: MemoryTransport) -> list[str | None]:
    (states,) = transport.flow_run_states.values()
    return [s.name for s in states]


# -- decorating ------------------------------------------------------------------------
def test_bare_decorator_makes_a_flow_named_after_the_function() -> None:
    @flow
    def my_etl_flow() -> int:
        """Extract, transform, load."""
        return 1

    assert isinstance(my_etl_flow, Flow)
    assert my_etl_flow.name == "my-etl-flow"
    assert my_etl_flow.description == "Extract, transform, load."
    assert repr(my_etl_flow) == "Flow('my-etl-flow')"
    assert my_etl_flow() == 1


def test_decorator_with_options_keeps_them() -> None:
    @flow(name="nightly", version="7", description="d", retries=2, retry_delay_seconds=0)
    def job() -> str:
        return "ok"

    assert job.name == "nightly"
    assert job.version == "7"
    assert job.description == "d"
    assert job.retries == 2
    assert job() == "ok"


def test_calling_a_flow_runs_it_once_and_records_a_flow_run(transport: MemoryTransport) -> None:
    calls: list[int] = []

    @flow
    def record(x: int) -> int:
        calls.append(x)
        return x * 2

    assert record(21) == 42
    assert calls == [21]
    (flow_run,) = transport.flow_runs.values()
    assert flow_run.flow_name == "record"
    assert flow_run.parameters == {"x": 21}
    assert only_flow_run_states(transport) == ["Running", "Completed"]


def test_return_state_returns_the_final_state() -> None:
    @flow
    def answer() -> int:
        return 42

    state = final_state(answer)
    assert state.type is StateType.COMPLETED
    assert state.name == "Completed"
    assert state.result() == 42


def test_return_state_of_a_failed_flow_does_not_raise() -> None:
    @flow
    def broken() -> None:
        raise ValueError("bad input")

    state = final_state(broken)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, ValueError)
    assert str(error) == "bad input"
    assert "ValueError: bad input" in (state.message or "")


def test_calling_a_failed_flow_raises_its_exception() -> None:
    @flow
    def broken() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        broken()


def test_a_flow_parameter_named_return_state_is_passed_through() -> None:
    @flow
    def takes_it(return_state: bool) -> bool:
        return return_state

    call: Any = takes_it  # statically, return_state=True means "give me the State"
    assert call(return_state=True) is True


def test_each_call_is_a_new_flow_run(transport: MemoryTransport) -> None:
    @flow
    def ping() -> str:
        ctx = get_run_context()
        assert isinstance(ctx, FlowRunContext)
        return str(ctx.flow_run.id)

    first, second = ping(), ping()
    assert first != second
    assert set(transport.flow_runs) == {uuid.UUID(first), uuid.UUID(second)}


def test_flow_run_name_template_uses_parameters(transport: MemoryTransport) -> None:
    @flow(flow_run_name="load-{day}")
    def load(day: str) -> None:
        return None

    load("2024-01-01")
    (flow_run,) = transport.flow_runs.values()
    assert flow_run.name == "load-2024-01-01"


def test_flow_run_name_callable(transport: MemoryTransport) -> None:
    @flow(flow_run_name=lambda: "custom-name")
    def named() -> None:
        return None

    named()
    (flow_run,) = transport.flow_runs.values()
    assert flow_run.name == "custom-name"


def test_flow_run_name_naming_an_unknown_parameter_is_a_clear_error() -> None:
    @flow(flow_run_name="run-{nope}")
    def named(day: str) -> None:
        return None

    with pytest.raises(ConfigurationError, match="nope"):
        named("x")


# -- with_options ----------------------------------------------------------------------
def test_with_options_returns_a_changed_copy_and_leaves_the_original_alone() -> None:
    @flow(name="original", retries=1)
    def base(x: int) -> int:
        return x + 1

    copy = base.with_options(name="copy", retries=3, log_prints=True)
    assert isinstance(copy, Flow)
    assert copy is not base
    assert (copy.name, copy.retries, copy.log_prints) == ("copy", 3, True)
    assert (base.name, base.retries, base.log_prints) == ("original", 1, None)
    assert copy.fn is base.fn
    assert copy(1) == 2
    assert base(1) == 2


def test_with_options_keeps_options_not_mentioned() -> None:
    def hook(*args: object) -> None:
        return None

    @flow(name="kept", version="3", timeout_seconds=5, on_completion=[hook])
    def base() -> None:
        return None

    copy = base.with_options(retries=1)
    assert copy.name == "kept"
    assert copy.version == "3"
    assert copy.timeout_seconds == 5
    assert copy.hooks["on_completion"] == (hook,)


def test_with_options_rejects_unknown_options_by_name() -> None:
    @flow
    def base() -> None:
        return None

    with pytest.raises(ConfigurationError, match="unknown") as info:
        base.with_options(unknown=1)
    assert "'unknown'" in str(info.value)


def test_with_options_validates_the_new_values() -> None:
    @flow
    def base() -> None:
        return None

    with pytest.raises(ConfigurationError, match="retries"):
        base.with_options(retries=-1)


# -- bad configuration -----------------------------------------------------------------
def test_flow_on_a_non_callable_says_to_decorate_a_function() -> None:
    not_a_function: Any = 42
    with pytest.raises(TypeError, match="decorate a function"):
        flow(not_a_function)


def test_flow_with_a_function_and_options_is_rejected() -> None:
    def fn() -> None:
        return None

    with pytest.raises(TypeError, match="@flow"):
        flow(fn, name="x")  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"retries": -1}, "retries"),
        ({"retries": "3"}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"retries": True}, "retries"),
        ({"retry_delay_seconds": -1}, "retry_delay_seconds"),
        ({"retry_delay_seconds": ["a"]}, "retry_delay_seconds"),
        ({"retry_delay_seconds": "10"}, "retry_delay_seconds"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": -2}, "timeout_seconds"),
        ({"result_serializer": "yaml"}, "serializer"),
        ({"task_runner": "threads"}, "task_runner"),
        ({"validate_parameters": "yes"}, "validate_parameters"),
        ({"persist_result": "yes"}, "persist_result"),
        ({"log_prints": 1}, "log_prints"),
        ({"on_completion": "not callable"}, "on_completion"),
        ({"flow_run_name": 3}, "flow_run_name"),
        ({"result_storage": 3}, "result_storage"),
    ],
)
def test_bad_flow_options_raise_configuration_errors_naming_the_option(
    options: dict[str, Any], named: str
) -> None:
    def fn() -> None:
        return None

    with pytest.raises(ConfigurationError, match=named):
        flow(**options)(fn)


def test_configuration_error_is_a_value_error() -> None:
    assert issubclass(ConfigurationError, ValueError)


# -- final flow state rules (documented at the top of flow_engine.py) -------------------
@task
def fails(message: str = "task failed") -> None:
    raise RuntimeError(message)


@task
def succeeds(x: int = 1) -> int:
    return x


def test_rule_1_the_function_raised_means_failed_with_that_exception() -> None:
    error = LookupError("boom")

    @flow
    def raises() -> None:
        raise error

    state = final_state(raises)
    assert state.type is StateType.FAILED
    assert state.name == "Failed"
    assert state.result(raise_on_failure=False) is error


def test_rule_2_returning_a_failed_state_fails_the_flow() -> None:
    @flow
    def returns_failed_state() -> State:
        return final_state(fails, "inner")

    state = final_state(returns_failed_state)
    assert state.is_failed()
    assert state.message == "Task run failed: RuntimeError: inner"
    with pytest.raises(RuntimeError, match="inner"):
        state.result()


def test_rule_2_returning_a_list_of_states_fails_if_any_failed() -> None:
    @flow
    def returns_states() -> list[State]:
        return [final_state(succeeds), final_state(fails, "second")]

    state = final_state(returns_states)
    assert state.is_failed()
    assert "1/2 states failed" in (state.message or "")
    with pytest.raises(RuntimeError, match="second"):
        state.result()


def test_rule_2_returning_completed_states_gives_their_results() -> None:
    @flow
    def returns_states() -> Any:
        return final_state(succeeds, 1), final_state(succeeds, 2)

    assert returns_states() == (1, 2)


def test_rule_2_returning_a_completed_state_completes_with_its_result() -> None:
    @flow
    def returns_state() -> State:
        return Completed(data="done", message="all good")

    state = final_state(returns_state)
    assert state.is_completed()
    assert state.message == "all good"
    assert state.result() == "done"


def test_rule_2_returning_a_failed_state_made_by_hand_fails_the_flow() -> None:
    @flow
    def returns_state() -> State:
        return Failed(message="nope")

    state = final_state(returns_state)
    assert state.is_failed()
    assert state.message == "nope"


def test_rule_2_returned_futures_are_replaced_by_their_results() -> None:
    @flow
    def returns_futures() -> Any:
        return {"a": succeeds.submit(1), "b": [succeeds.submit(2), 3]}

    state = final_state(returns_futures)
    assert state.is_completed()
    assert state.result() == {"a": 1, "b": [2, 3]}


def test_rule_2_returning_a_single_future_gives_its_result() -> None:
    @flow
    def returns_future() -> Any:
        return succeeds.submit(7)

    assert returns_future() == 7


def test_rule_2_a_failed_returned_future_fails_the_flow() -> None:
    @flow
    def returns_futures() -> Any:
        return [succeeds.submit(1), fails.submit("in a future")]

    state = final_state(returns_futures)
    assert state.is_failed()
    assert "1/2 states failed" in (state.message or "")
    with pytest.raises(RuntimeError, match="in a future"):
        state.result()


def test_rule_3_an_unhandled_failed_submission_fails_the_flow() -> None:
    @flow
    def drops_a_failure() -> str:
        fails.submit("unobserved")
        succeeds.submit()
        return "finished"

    state = final_state(drops_a_failure)
    assert state.is_failed()
    assert "'fails'" in (state.message or "")
    assert "did not handle" in (state.message or "")
    with pytest.raises(RuntimeError, match="unobserved"):
        state.result()


@pytest.mark.parametrize("how", ["state", "result", "downstream-allow-failure"])
def test_rule_3_a_failure_the_flow_looked_at_does_not_fail_the_flow(how: str) -> None:
    @task
    def inspect(value: Any) -> str:
        return type(value).__name__

    @flow
    def handles_it() -> str:
        future = fails.submit("handled")
        if how == "state":
            future.wait()
            assert future.state.is_failed()
        elif how == "result":
            assert isinstance(future.result(raise_on_failure=False), RuntimeError)
        else:
            assert inspect(allow_failure(future)) == "RuntimeError"
        return "fine"

    state = final_state(handles_it)
    assert state.is_completed(), state
    assert state.result() == "fine"


def test_rule_3_a_downstream_task_of_a_failure_is_upstream_failed() -> None:
    @flow
    def chain() -> None:
        upstream = fails.submit("root cause")
        downstream = succeeds.submit(upstream)
        downstream.wait()
        assert downstream.state.name == "UpstreamFailed"
        assert isinstance(downstream.result(raise_on_failure=False), UpstreamTaskError)

    state = final_state(chain)
    assert state.is_completed(), state


def test_rule_4_otherwise_completed_with_the_return_value() -> None:
    @flow
    def plain() -> dict[str, int]:
        succeeds.submit(1).result()
        return {"n": 1}

    state = final_state(plain)
    assert state.is_completed()
    assert state.name == "Completed"
    assert state.result() == {"n": 1}


def test_a_task_called_directly_that_fails_fails_the_flow() -> None:
    @flow
    def direct() -> None:
        fails("direct call")

    state = final_state(direct)
    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), RuntimeError)


def test_a_flow_catching_a_direct_task_failure_completes() -> None:
    @flow
    def catches() -> str:
        try:
            fails("caught")
        except RuntimeError as exc:
            return f"caught {exc}"
        return "no"

    assert catches() == "caught caught"


def test_returning_a_task_state_gives_the_flow_its_own_state(transport: MemoryTransport) -> None:
    seen: list[State] = []

    @flow
    def returns_task_state() -> Any:
        state = final_state(succeeds, 3)
        seen.append(state)
        return state

    state = final_state(returns_task_state)
    assert state.result() == 3
    (flow_run_id,) = transport.flow_runs
    (task_run_id,) = transport.task_runs
    (task_state,) = seen
    assert state is not task_state
    assert state.state_details.flow_run_id == flow_run_id
    assert state.state_details.task_run_id is None
    assert transport.flow_run_states[flow_run_id][-1].state_details.task_run_id is None
    # the task's own state is left as it was
    assert task_state.state_details.task_run_id == task_run_id
    assert task_state.state_details.transition_id is None
