"""Persisted results through the engine: refs, serializers, storage keys, failures."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

from conveyor import Flow, State, Task, flow, task
from conveyor.engine import runtime
from conveyor.engine.results import get_result_store
from conveyor.exceptions import SerializationError
from conveyor.schemas.results import ResultRef
from conveyor.schemas.states import Completed
from conveyor.settings import Settings


def final_state(fn: Flow[..., Any] | Task[..., Any], *args: Any, **kwargs: Any) -> State:
    state = fn(*args, return_state=True, **kwargs)
    assert isinstance(state, State)
    return state


def run_in_flow(fn: Task[..., Any], *args: Any, **kwargs: Any) -> State:
    seen: list[State] = []

    @flow
    def wrapper() -> None:
        seen.append(final_state(fn, *args, **kwargs))

    wrapper()
    return seen[0]


def read_back(ref: ResultRef) -> Any:
    """Read a result the way a fresh state (no data in memory) would."""
    fresh = Completed()
    fresh.result_ref = ref
    return fresh.result()


# -- persisting ------------------------------------------------------------------------
def test_results_are_not_persisted_by_default() -> None:
    @task
    def value() -> int:
        return 1

    state = run_in_flow(value)
    assert state.result() == 1
    assert state.result_ref is None


def test_persist_result_writes_through_the_result_store(conveyor_home: pathlib.Path) -> None:
    @task(persist_result=True)
    def value() -> dict[str, int]:
        return {"answer": 42}

    state = run_in_flow(value)
    ref = state.result_ref
    assert ref is not None
    assert ref.key == str(state.state_details.task_run_id)
    assert ref.serializer == "cloudpickle"
    assert ref.storage == str(conveyor_home / "storage")
    assert (conveyor_home / "storage" / ref.key).is_file()
    store = get_result_store(None, None, Settings(home=conveyor_home))
    assert store.read(ref.key) == {"answer": 42}
    assert read_back(ref) == {"answer": 42}


def test_persist_result_on_a_flow_persists_the_flow_result(conveyor_home: pathlib.Path) -> None:
    @flow(persist_result=True)
    def pipeline() -> list[int]:
        return [1, 2, 3]

    state = final_state(pipeline)
    ref = state.result_ref
    assert ref is not None
    assert ref.key == str(state.state_details.flow_run_id)
    assert read_back(ref) == [1, 2, 3]


def test_tasks_inherit_the_flows_result_settings(tmp_path: pathlib.Path) -> None:
    storage = tmp_path / "flow-results"
    seen: list[State] = []

    @task
    def value() -> dict[str, str]:
        return {"k": "v"}

    @flow(persist_result=True, result_storage=str(storage), result_serializer="json")
    def pipeline() -> None:
        seen.append(final_state(value))

    pipeline()
    ref = seen[0].result_ref
    assert ref is not None
    assert ref.serializer == "json"
    assert ref.storage == str(storage)
    assert (storage / ref.key).is_file()


def test_the_persist_results_setting_turns_persistence_on(tmp_path: pathlib.Path) -> None:
    @task
    def value() -> int:
        return 5

    @task(persist_result=False)
    def not_persisted() -> int:
        return 6

    with runtime.use_settings(Settings(home=tmp_path, persist_results=True)):
        assert run_in_flow(value).result_ref is not None
        assert run_in_flow(not_persisted).result_ref is None


def test_the_environment_configures_persistence(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "env-home"))
    monkeypatch.setenv("CONVEYOR_PERSIST_RESULTS", "true")
    monkeypatch.setenv("CONVEYOR_RESULT_SERIALIZER", "json")

    @task
    def value() -> int:
        return 5

    with runtime.use_settings(Settings.from_env()):
        ref = run_in_flow(value).result_ref
    assert ref is not None
    assert ref.serializer == "json"
    assert ref.storage == str(tmp_path / "env-home" / "storage")


def test_a_result_can_be_read_back_in_a_new_process(tmp_path: pathlib.Path) -> None:
    @task(persist_result=True)
    def value() -> dict[str, Any]:
        return {"rows": [1, 2, 3], "name": "ok"}

    ref = run_in_flow(value).result_ref
    assert ref is not None
    script = tmp_path / "read_back.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, sys
            from conveyor.schemas.results import ResultRef
            from conveyor.schemas.states import Completed

            state = Completed()
            state.result_ref = ResultRef.model_validate_json(sys.argv[1])
            print(json.dumps(state.result()))
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    done = subprocess.run(
        [sys.executable, str(script), ref.model_dump_json()],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"rows": [1, 2, 3], "name": "ok"}


# -- serializers -----------------------------------------------------------------------
@pytest.mark.parametrize("serializer", ["pickle", "cloudpickle", "json"])
def test_each_serializer_round_trips_a_result(serializer: str, conveyor_home: pathlib.Path) -> None:
    @task(persist_result=True, result_serializer=serializer)
    def value() -> dict[str, Any]:
        return {"a": [1, 2], "b": "text", "c": None}

    ref = run_in_flow(value).result_ref
    assert ref is not None
    assert ref.serializer == serializer
    record = (conveyor_home / "storage" / ref.key).read_bytes()
    header, _, payload = record.partition(b"\n")
    assert json.loads(header)["serializer"] == serializer
    if serializer == "json":
        assert json.loads(payload) == {"a": [1, 2], "b": "text", "c": None}
    assert read_back(ref) == {"a": [1, 2], "b": "text", "c": None}


def test_cloudpickle_persists_what_pickle_cannot() -> None:
    def make() -> Any:
        offset = 10
        return lambda x: x + offset

    @task(persist_result=True, result_serializer="cloudpickle")
    def closure() -> Any:
        return make()

    ref = run_in_flow(closure).result_ref
    assert ref is not None
    assert read_back(ref)(1) == 11

    state = run_in_flow(closure.with_options(result_serializer="pickle"))
    assert state.is_failed()
    assert "pickle" in (state.message or "")


def test_json_results_come_back_as_json_data() -> None:
    @task(persist_result=True, result_serializer="json")
    def value() -> tuple[int, int]:
        return (1, 2)

    ref = run_in_flow(value).result_ref
    assert ref is not None
    assert read_back(ref) == [1, 2]


# -- storage location and keys ---------------------------------------------------------
def test_result_storage_folder(tmp_path: pathlib.Path) -> None:
    storage = tmp_path / "my-results"

    @task(persist_result=True, result_storage=str(storage))
    def value() -> int:
        return 3

    ref = run_in_flow(value).result_ref
    assert ref is not None
    assert ref.storage == str(storage)
    assert (storage / ref.key).is_file()


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("reports/{parameters[day]}.pkl", "reports/2024-05-01.pkl"),
        ("reports/{day}-{n}.pkl", "reports/2024-05-01-3.pkl"),
        ("{flow_name}/{task_name}/{day}", "wrapper/report/2024-05-01"),
    ],
)
def test_result_storage_key_template(
    template: str, expected: str, conveyor_home: pathlib.Path
) -> None:
    @task(result_storage_key=template)
    def report(day: str, n: int = 3) -> str:
        return f"report for {day}"

    state = run_in_flow(report, "2024-05-01")
    ref = state.result_ref
    assert ref is not None, state
    assert ref.key == expected
    assert (conveyor_home / "storage" / expected).is_file()
    assert read_back(ref) == "report for 2024-05-01"


def test_result_storage_key_naming_an_unknown_field_fails_clearly() -> None:
    @task(result_storage_key="out/{nope}.pkl")
    def report(day: str) -> str:
        return day

    state = run_in_flow(report, "x")
    assert state.is_failed()
    assert "{nope}" in (state.message or "")


# -- results that cannot be stored -----------------------------------------------------
def test_an_unserializable_result_fails_the_task_with_a_clear_message() -> None:
    @task(persist_result=True)
    def returns_a_lock() -> Any:
        return threading.Lock()

    state = run_in_flow(returns_a_lock)
    assert state.is_failed()
    message = state.message or ""
    assert message.startswith("Result could not be persisted:")
    assert "lock" in message
    assert "cloudpickle" in message
    error = state.result(raise_on_failure=False)
    assert isinstance(error, SerializationError)


def test_a_value_json_cannot_encode_fails_the_task() -> None:
    @task(persist_result=True, result_serializer="json")
    def returns_an_object() -> Any:
        return object()

    state = run_in_flow(returns_an_object)
    assert state.is_failed()
    assert "json" in (state.message or "")
    assert isinstance(state.result(raise_on_failure=False), SerializationError)


def test_an_unserializable_flow_result_fails_the_flow() -> None:
    @flow(persist_result=True)
    def returns_a_lock() -> Any:
        return threading.Lock()

    state = final_state(returns_a_lock)
    assert state.is_failed()
    assert (state.message or "").startswith("Result could not be persisted:")
    with pytest.raises(SerializationError):
        state.result()


def test_an_unserializable_result_without_persistence_is_fine() -> None:
    @task
    def returns_a_lock() -> Any:
        return threading.Lock()

    state = run_in_flow(returns_a_lock)
    assert state.is_completed()
