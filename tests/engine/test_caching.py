"""Caching through @task(cache_policy=..., cache_key_fn=..., cache_expiration=...)."""

from __future__ import annotations

import datetime
import os
import pathlib
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

from conveyor import (
    DEFAULT,
    FLOW_PARAMETERS,
    INPUTS,
    NONE,
    RUN_ID,
    TASK_SOURCE,
    CachePolicy,
    Flow,
    State,
    Task,
    flow,
    task,
)
from conveyor.client import MemoryTransport
from conveyor.engine.cache_policies import CacheKeyContext
from conveyor.schemas.states import StateType


def final_state(fn: Flow[..., Any] | Task[..., Any], *args: Any, **kwargs: Any) -> State:
    state = fn(*args, return_state=True, **kwargs)
    assert isinstance(state, State)
    return state


class Counter:
    """Counts calls of a task body, so a test can tell a cache hit from a run."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def __call__(self, *args: Any) -> None:
        with self._lock:
            self.calls.append(args)

    def __len__(self) -> int:
        return len(self.calls)


def run_in_flow(fn: Task[..., Any], *args: Any, **kwargs: Any) -> State:
    """Run one task call inside a fresh flow run and return the task run's final state."""
    seen: list[State] = []

    @flow
    def wrapper() -> None:
        seen.append(final_state(fn, *args, **kwargs))

    wrapper()
    return seen[0]


# -- INPUTS ----------------------------------------------------------------------------
def test_inputs_cache_hit_returns_the_cached_value_without_calling_the_function(
    transport: MemoryTransport,
) -> None:
    counter = Counter()

    @task(cache_policy=INPUTS)
    def square(x: int) -> int:
        counter(x)
        return x * x

    first = run_in_flow(square, 4)
    second = run_in_flow(square, 4)
    assert len(counter) == 1
    assert first.name == "Completed"
    assert second.type is StateType.COMPLETED
    assert second.name == "Cached"
    assert second.result() == 16
    assert second.state_details.cache_key is not None
    assert second.state_details.cache_key == first.state_details.cache_key
    cached_runs = [r for r in transport.task_runs.values() if r.cache_key is not None]
    assert len(cached_runs) == 2
    histories = [[r.state.name for r in records] for records in transport.task_run_states.values()]
    assert sorted(histories) == [["Pending", "Cached"], ["Pending", "Running", "Completed"]]


def test_inputs_different_inputs_run_again() -> None:
    counter = Counter()

    @task(cache_policy=INPUTS)
    def square(x: int) -> int:
        counter(x)
        return x * x

    assert run_in_flow(square, 2).result() == 4
    assert run_in_flow(square, 3).result() == 9
    assert run_in_flow(square, 3).name == "Cached"
    assert counter.calls == [(2,), (3,)]


def test_inputs_cache_hits_within_one_flow_run() -> None:
    counter = Counter()

    @task(cache_policy=INPUTS)
    def square(x: int) -> int:
        counter(x)
        return x * x

    @flow
    def pipeline() -> list[int]:
        return [square(3), square(3), square.submit(3).result()]

    assert pipeline() == [9, 9, 9]
    assert len(counter) == 1


def test_inputs_minus_a_name_ignores_that_input() -> None:
    counter = Counter()

    @task(cache_policy=INPUTS - "verbose")
    def square(x: int, verbose: bool = False) -> int:
        counter(x)
        return x * x

    run_in_flow(square, 5, verbose=False)
    assert run_in_flow(square, 5, verbose=True).name == "Cached"
    assert run_in_flow(square, 6, verbose=True).name == "Completed"
    assert len(counter) == 2


def test_unhashable_inputs_turn_caching_off_for_the_run(
    conveyor_logs: pytest.LogCaptureFixture,
) -> None:
    counter = Counter()

    @task(cache_policy=INPUTS)
    def use_lock(lock: Any) -> str:
        counter()
        return "used"

    lock = threading.Lock()
    assert run_in_flow(use_lock, lock).name == "Completed"
    assert run_in_flow(use_lock, lock).name == "Completed"
    assert len(counter) == 2
    assert any("Caching is disabled" in r.getMessage() for r in conveyor_logs.records)


# -- TASK_SOURCE -----------------------------------------------------------------------
def test_task_source_ignores_inputs_but_not_code() -> None:
    counter = Counter()

    @task(cache_policy=TASK_SOURCE)
    def constant(x: int) -> int:
        counter("constant", x)
        return 1

    @task(cache_policy=TASK_SOURCE)
    def other_constant(x: int) -> int:
        counter("other", x)
        return 2

    assert run_in_flow(constant, 1).result() == 1
    assert run_in_flow(constant, 2).name == "Cached"  # inputs do not matter
    assert run_in_flow(other_constant, 1).result() == 2  # different code: no hit
    assert counter.calls == [("constant", 1), ("other", 1)]


def test_task_source_change_invalidates_the_cache() -> None:
    made: list[Task[[], int]] = []
    for body in ("return 1", "return 2"):
        namespace: dict[str, Any] = {}
        exec(f"def versioned():\n    {body}\n", namespace)
        made.append(task(cache_policy=TASK_SOURCE)(namespace["versioned"]))
    first, second = made
    assert run_in_flow(first).result() == 1
    assert run_in_flow(first).name == "Cached"
    state = run_in_flow(second)
    assert state.name == "Completed"
    assert state.result() == 2


# -- FLOW_PARAMETERS -------------------------------------------------------------------
def test_flow_parameters_cache_by_the_flow_run_parameters() -> None:
    counter = Counter()

    @task(cache_policy=FLOW_PARAMETERS)
    def load(table: str) -> str:
        counter(table)
        return f"loaded {table}"

    @flow
    def pipeline(day: str, table: str) -> str:
        return final_state(load, table).name or ""

    assert pipeline("mon", "a") == "Completed"
    assert pipeline("mon", "a") == "Cached"
    assert pipeline("mon", "b") == "Completed"  # the flow parameters differ
    assert pipeline("tue", "a") == "Completed"
    assert counter.calls == [("a",), ("b",), ("a",)]


def test_flow_parameters_ignore_task_inputs() -> None:
    counter = Counter()

    @task(cache_policy=FLOW_PARAMETERS)
    def load(table: str) -> str:
        counter(table)
        return f"loaded {table}"

    @flow
    def pipeline(day: str) -> list[str]:
        return [final_state(load, "a").name or "", final_state(load, "b").name or ""]

    assert pipeline("mon") == ["Completed", "Cached"]
    assert counter.calls == [("a",)]


def test_flow_parameters_plus_inputs() -> None:
    counter = Counter()

    @task(cache_policy=FLOW_PARAMETERS + INPUTS)
    def load(table: str) -> str:
        counter(table)
        return f"loaded {table}"

    @flow
    def pipeline(day: str, table: str) -> str:
        return final_state(load, table).name or ""

    assert pipeline("mon", "a") == "Completed"
    assert pipeline("mon", "b") == "Completed"
    assert pipeline("mon", "a") == "Cached"
    assert pipeline("tue", "a") == "Completed"
    assert len(counter) == 3


# -- NONE, RUN_ID, DEFAULT ---------------------------------------------------------------
def test_none_never_caches_and_persists_nothing() -> None:
    counter = Counter()

    @task(cache_policy=NONE)
    def square(x: int) -> int:
        counter(x)
        return x * x

    first = run_in_flow(square, 3)
    second = run_in_flow(square, 3)
    assert (first.name, second.name) == ("Completed", "Completed")
    assert len(counter) == 2
    assert first.result_ref is None
    assert square.cache_policy is None


def test_none_plus_a_policy_is_that_policy() -> None:
    assert NONE + INPUTS == INPUTS
    counter = Counter()

    @task(cache_policy=NONE + INPUTS)
    def square(x: int) -> int:
        counter(x)
        return x * x

    run_in_flow(square, 3)
    assert run_in_flow(square, 3).name == "Cached"
    assert len(counter) == 1


@pytest.mark.parametrize("policy", [RUN_ID, DEFAULT], ids=["RUN_ID", "DEFAULT"])
def test_run_id_and_default_cache_only_within_one_flow_run(policy: CachePolicy) -> None:
    counter = Counter()

    @task(cache_policy=policy)
    def square(x: int) -> int:
        counter(x)
        return x * x

    @flow
    def pipeline() -> list[str]:
        return [final_state(square, 2).name or "", final_state(square, 2).name or ""]

    assert pipeline() == ["Completed", "Cached"]
    assert pipeline() == ["Completed", "Cached"]
    assert len(counter) == 2


def test_inputs_plus_task_source_composition() -> None:
    counter = Counter()
    policy = INPUTS + TASK_SOURCE
    assert isinstance(policy, CachePolicy)

    @task(cache_policy=policy)
    def square(x: int) -> int:
        counter(x)
        return x * x

    run_in_flow(square, 2)
    assert run_in_flow(square, 2).name == "Cached"
    assert run_in_flow(square, 3).name == "Completed"
    assert len(counter) == 2


def test_no_cache_policy_means_no_caching() -> None:
    counter = Counter()

    @task
    def square(x: int) -> int:
        counter(x)
        return x * x

    run_in_flow(square, 2)
    assert run_in_flow(square, 2).name == "Completed"
    assert len(counter) == 2


# -- cache_key_fn ----------------------------------------------------------------------
def test_cache_key_fn_decides_the_key() -> None:
    counter = Counter()
    seen: list[CacheKeyContext] = []

    def parity(context: CacheKeyContext, inputs: dict[str, Any]) -> str:
        seen.append(context)
        return f"parity-{inputs['x'] % 2}"

    @task(cache_key_fn=parity)
    def first_of_parity(x: int) -> int:
        counter(x)
        return x

    assert run_in_flow(first_of_parity, 1).result() == 1
    assert run_in_flow(first_of_parity, 3).result() == 1  # same key as 1
    assert run_in_flow(first_of_parity, 2).result() == 2
    assert counter.calls == [(1,), (2,)]
    assert seen[0].task_key == first_of_parity.task_key
    assert run_in_flow(first_of_parity, 5).state_details.cache_key == "parity-1"


def test_cache_key_fn_returning_none_skips_the_cache() -> None:
    counter = Counter()

    def never(context: CacheKeyContext, inputs: dict[str, Any]) -> str | None:
        return None

    @task(cache_key_fn=never)
    def square(x: int) -> int:
        counter(x)
        return x * x

    run_in_flow(square, 2)
    assert run_in_flow(square, 2).name == "Completed"
    assert len(counter) == 2


# -- expiration and refresh ------------------------------------------------------------
def test_an_expired_cache_entry_runs_again() -> None:
    counter = Counter()

    @task(cache_policy=INPUTS, cache_expiration=datetime.timedelta(seconds=0.3))
    def stamp(x: int) -> float:
        counter(x)
        return time.monotonic()

    first = run_in_flow(stamp, 1).result()
    assert run_in_flow(stamp, 1).result() == first
    time.sleep(0.35)
    again = run_in_flow(stamp, 1)
    assert again.name == "Completed"
    assert again.result() != first
    assert len(counter) == 2
    assert run_in_flow(stamp, 1).name == "Cached"  # the new entry is fresh again


def test_a_completed_cached_run_records_its_key_and_expiration() -> None:
    @task(cache_policy=INPUTS, cache_expiration=datetime.timedelta(hours=1))
    def square(x: int) -> int:
        return x * x

    before = datetime.datetime.now(datetime.timezone.utc)
    state = run_in_flow(square, 2)
    details = state.state_details
    assert details.cache_key is not None
    assert details.cache_expiration is not None
    expected = before + datetime.timedelta(hours=1)
    assert abs((details.cache_expiration - expected).total_seconds()) < 5


def test_a_cache_policy_with_a_result_storage_key_still_hits(
    conveyor_home: pathlib.Path,
) -> None:
    counter = Counter()

    @task(cache_policy=INPUTS, result_storage_key="squares/{x}.pkl")
    def square(x: int) -> int:
        counter(x)
        return x * x

    first = run_in_flow(square, 3)
    assert first.result_ref is not None
    assert first.result_ref.key == "squares/3.pkl"
    assert (conveyor_home / "storage" / "squares" / "3.pkl").is_file()
    second = run_in_flow(square, 3)
    assert second.name == "Cached"
    assert second.result() == 9
    assert len(counter) == 1


def test_refresh_cache_reruns_and_replaces_the_entry() -> None:
    counter = Counter()
    values = iter(["old", "new"])

    @task(cache_policy=INPUTS)
    def fetch(x: int) -> str:
        counter(x)
        return next(values)

    assert run_in_flow(fetch, 1).result() == "old"
    refreshed = run_in_flow(fetch.with_options(refresh_cache=True), 1)
    assert refreshed.name == "Completed"
    assert refreshed.result() == "new"
    cached = run_in_flow(fetch, 1)
    assert cached.name == "Cached"
    assert cached.result() == "new"
    assert len(counter) == 2


def test_cache_is_shared_with_standalone_task_calls() -> None:
    counter = Counter()

    @task(cache_policy=INPUTS)
    def square(x: int) -> int:
        counter(x)
        return x * x

    assert square(7) == 49
    assert final_state(square, 7).name == "Cached"
    assert run_in_flow(square, 7).name == "Cached"
    assert len(counter) == 1


def test_cached_results_go_to_the_configured_result_storage(tmp_path: pathlib.Path) -> None:
    storage = tmp_path / "cache-store"

    @task(cache_policy=INPUTS, result_storage=str(storage))
    def square(x: int) -> int:
        return x * x

    first = run_in_flow(square, 3)
    assert first.result_ref is not None
    assert first.result_ref.storage == str(storage)
    assert (storage / first.result_ref.key).is_file()
    assert run_in_flow(square, 3).name == "Cached"


# -- across processes ------------------------------------------------------------------
CROSS_PROCESS_SCRIPT = """
import pathlib
import sys

from conveyor import INPUTS, TASK_SOURCE, flow, task

SIDE_EFFECTS = pathlib.Path(sys.argv[1])


@task(cache_policy=INPUTS + TASK_SOURCE)
def expensive(x: int) -> int:
    with SIDE_EFFECTS.open("a") as f:
        f.write(f"ran {x}\\n")
    return x * 10


@flow
def pipeline(x: int) -> str:
    state = expensive(x, return_state=True)
    return f"{state.name}:{state.result()}"


if __name__ == "__main__":
    print(pipeline(4))
"""


def run_script(script: pathlib.Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_a_second_process_hits_the_cache(tmp_path: pathlib.Path) -> None:
    script = tmp_path / "cached_flow.py"
    script.write_text(textwrap.dedent(CROSS_PROCESS_SCRIPT))
    side_effects = tmp_path / "side-effects.txt"
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["CONVEYOR_HOME"] = str(home)

    assert run_script(script, env, str(side_effects)) == "Completed:40"
    assert run_script(script, env, str(side_effects)) == "Cached:40"
    assert side_effects.read_text().splitlines() == ["ran 4"]
    assert (home / "storage").is_dir()  # the cache lives under CONVEYOR_HOME


def test_policies_hash_the_same_in_another_process(tmp_path: pathlib.Path) -> None:
    script = tmp_path / "keys.py"
    script.write_text(
        textwrap.dedent(
            """
            import datetime, uuid
            from conveyor.engine.cache_policies import INPUTS, CacheKeyContext
            context = CacheKeyContext(
                task_key="t", task_fn=print, flow_run_id=None, flow_parameters={},
                task_run_id=uuid.UUID(int=0),
            )
            print(INPUTS.compute_key(context, {"x": [1, 2], "d": datetime.date(2024, 1, 1)}))
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["PYTHONHASHSEED"] = "1"
    first = run_script(script, env)
    env["PYTHONHASHSEED"] = "2"
    assert run_script(script, env) == first
