from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from conveyor.engine.cache_policies import (
    DEFAULT,
    FLOW_PARAMETERS,
    INPUTS,
    NONE,
    RUN_ID,
    TASK_SOURCE,
    CacheKeyContext,
    CacheKeyFnPolicy,
    CachePolicy,
    CompoundCachePolicy,
    FlowParameters,
    Inputs,
    NoCache,
    RunId,
    TaskSource,
    hash_objects,
)
from conveyor.exceptions import ConfigurationError

HEX = re.compile(r"[0-9a-f]{32,}")
FLOW_RUN = uuid.UUID(int=1)
TASK_RUN = uuid.UUID(int=2)


def add(x: int, y: int) -> int:
    return x + y


def multiply(x: int, y: int) -> int:
    return x * y


def ctx(
    fn: Callable[..., Any] = add,
    *,
    flow_run_id: uuid.UUID | None = FLOW_RUN,
    flow_parameters: dict[str, Any] | None = None,
    task_run_id: uuid.UUID = TASK_RUN,
) -> CacheKeyContext:
    return CacheKeyContext(
        task_key=f"{fn.__module__}.{getattr(fn, '__qualname__', type(fn).__qualname__)}",
        task_fn=fn,
        flow_run_id=flow_run_id,
        flow_parameters=flow_parameters or {},
        task_run_id=task_run_id,
    )


class Point(BaseModel):
    x: int


@dataclasses.dataclass
class Box:
    size: int


class Opaque:
    """No JSON form: hashed through cloudpickle."""

    def __init__(self, n: int) -> None:
        self.n = n


# -- hash_objects ----------------------------------------------------------------------
def test_hash_objects_is_a_stable_hex_digest() -> None:
    key = hash_objects({"a": 1, "b": [1, 2]}, "x")
    assert key is not None and HEX.fullmatch(key)
    assert key == hash_objects({"b": [1, 2], "a": 1}, "x")
    assert key != hash_objects({"a": 1, "b": [1, 2]}, "y")


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (datetime.date(2024, 1, 1), "2024-01-01"),
        ({1, 2}, [1, 2]),
        (1, 1.0),
        (1, True),
        (b"ab", "6162"),
        (uuid.UUID(int=1), str(uuid.UUID(int=1))),
        (Point(x=1), {"x": 1}),
        (Box(size=1), {"size": 1}),
    ],
)
def test_hash_objects_tells_types_apart(one: Any, other: Any) -> None:
    assert hash_objects(one) != hash_objects(other)


def test_hash_objects_of_equal_values_are_equal() -> None:
    assert hash_objects(Point(x=1)) == hash_objects(Point(x=1))
    assert hash_objects(Box(size=1)) == hash_objects(Box(size=1))
    assert hash_objects(Opaque(1)) == hash_objects(Opaque(1))
    assert hash_objects(Opaque(1)) != hash_objects(Opaque(2))
    assert hash_objects({3, 1, 2}) == hash_objects({2, 3, 1})


def test_hash_objects_returns_none_for_unhashable_values() -> None:
    assert hash_objects(threading.Lock()) is None
    assert hash_objects({"ok": 1, "gen": (n for n in range(2))}) is None


def test_hash_objects_is_the_same_in_another_process() -> None:
    # A different hash seed changes set iteration order; the digest must not change.
    code = (
        "import datetime, uuid\n"
        "from conveyor.engine.cache_policies import hash_objects\n"
        "print(hash_objects({'s': {'x', 'y', 'z'}, 'd': datetime.date(2024, 1, 1),"
        " 'u': uuid.UUID(int=5)}))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    local = hash_objects(
        {"s": {"z", "y", "x"}, "d": datetime.date(2024, 1, 1), "u": uuid.UUID(int=5)}
    )
    assert out.stdout.strip() == local


# -- single policies -------------------------------------------------------------------
def test_inputs() -> None:
    key = INPUTS.compute_key(ctx(), {"x": 1, "y": 2})
    assert key is not None and HEX.fullmatch(key)
    assert key == INPUTS.compute_key(ctx(multiply, task_run_id=uuid.uuid4()), {"y": 2, "x": 1})
    assert key != INPUTS.compute_key(ctx(), {"x": 1, "y": 3})


def test_inputs_exclude() -> None:
    with_debug = {"x": 1, "debug": True}
    without = {"x": 1, "debug": False}
    assert INPUTS.compute_key(ctx(), with_debug) != INPUTS.compute_key(ctx(), without)
    policy = Inputs(exclude=["debug"])
    assert policy.compute_key(ctx(), with_debug) == policy.compute_key(ctx(), without)
    assert policy == INPUTS - "debug"
    assert Inputs(exclude="debug") == policy
    assert (INPUTS - "debug" - "x").exclude == ("debug", "x")


def test_unhashable_inputs_disable_caching_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="conveyor.cache"):
        assert INPUTS.compute_key(ctx(), {"x": 1, "lock": threading.Lock()}) is None
    [record] = caplog.records
    message = record.getMessage()
    assert record.name == "conveyor.cache"
    assert "Caching is disabled" in message
    assert f"{__name__}.add" in message
    assert "'lock'" in message and "'x'" not in message
    assert str(TASK_RUN) in message


def test_task_source() -> None:
    assert TASK_SOURCE.compute_key(ctx(add), {}) == TASK_SOURCE.compute_key(ctx(add), {"x": 9})
    assert TASK_SOURCE.compute_key(ctx(add), {}) != TASK_SOURCE.compute_key(ctx(multiply), {})


def compile_function(source: str) -> Callable[..., Any]:
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # no file behind it, so inspect.getsource fails
    fn: Callable[..., Any] = namespace["f"]
    return fn


def test_task_source_without_source_uses_the_code() -> None:
    one = compile_function("def f(x):\n    return x + 1\n")
    same = compile_function("def f(x):\n    return x + 1\n")
    two = compile_function("def f(x):\n    return x + 2\n")
    nested = compile_function("def f(x):\n    return list(map(lambda v: v * 3, x))\n")
    nested_same = compile_function("def f(x):\n    return list(map(lambda v: v * 3, x))\n")
    key = TASK_SOURCE.compute_key(ctx(one), {})
    assert key is not None and HEX.fullmatch(key)
    assert key == TASK_SOURCE.compute_key(ctx(same), {})
    assert key != TASK_SOURCE.compute_key(ctx(two), {})
    assert TASK_SOURCE.compute_key(ctx(nested), {}) == TASK_SOURCE.compute_key(ctx(nested_same), {})


def test_task_source_without_source_is_the_same_in_another_process() -> None:
    # Set constants (`x in {...}`) iterate in hash-seed order; the key must not follow it.
    code = (
        "from conveyor.engine.cache_policies import TASK_SOURCE, CacheKeyContext\n"
        "import uuid\n"
        "ns = {}\n"
        'exec(\'def f(x):\\n    return x in {"a", "b", "c", "d"}\\n\', ns)\n'
        "ctx = CacheKeyContext('f', ns['f'], None, {}, uuid.UUID(int=0))\n"
        "print(TASK_SOURCE.compute_key(ctx, {}))\n"
    )
    keys = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert len(keys) == 1 and HEX.fullmatch(keys.pop())


def test_task_source_of_a_callable_object_and_a_builtin() -> None:
    class Adder:
        def __call__(self, x: int) -> int:
            return x + 1

    assert TASK_SOURCE.compute_key(ctx(Adder()), {}) is not None
    assert TASK_SOURCE.compute_key(ctx(len), {}) is None


def test_flow_parameters() -> None:
    first = FLOW_PARAMETERS.compute_key(ctx(flow_parameters={"day": "mon"}), {})
    assert first == FLOW_PARAMETERS.compute_key(ctx(flow_parameters={"day": "mon"}), {"x": 1})
    assert first != FLOW_PARAMETERS.compute_key(ctx(flow_parameters={"day": "tue"}), {})


def test_run_id() -> None:
    assert RUN_ID.compute_key(ctx(), {}) == FLOW_RUN.hex
    assert RUN_ID.compute_key(ctx(flow_run_id=None), {}) == TASK_RUN.hex


def test_no_cache() -> None:
    assert NONE.compute_key(ctx(), {"x": 1}) is None
    assert NoCache() == NONE


def test_cache_key_fn_policy() -> None:
    def by_x(context: CacheKeyContext, inputs: dict[str, Any]) -> str | None:
        return f"{context.task_key}-{inputs['x']}" if inputs["x"] else None

    policy = CacheKeyFnPolicy(by_x)
    assert policy.compute_key(ctx(), {"x": 5}) == f"{__name__}.add-5"
    assert policy.compute_key(ctx(), {"x": 0}) is None


def test_cache_key_fn_must_return_a_string() -> None:
    policy = CacheKeyFnPolicy(lambda context, inputs: 42)  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigurationError, match="must return a str or None, got int"):
        policy.compute_key(ctx(), {})


# -- combining -------------------------------------------------------------------------
def test_default_is_inputs_source_and_run() -> None:
    assert isinstance(DEFAULT, CompoundCachePolicy)
    assert DEFAULT.policies == (INPUTS, TASK_SOURCE, RUN_ID)
    key = DEFAULT.compute_key(ctx(), {"x": 1, "y": 2})
    assert key is not None and HEX.fullmatch(key)
    assert key == DEFAULT.compute_key(ctx(task_run_id=uuid.uuid4()), {"x": 1, "y": 2})
    assert key != DEFAULT.compute_key(ctx(), {"x": 1, "y": 3})
    assert key != DEFAULT.compute_key(ctx(multiply), {"x": 1, "y": 2})
    assert key != DEFAULT.compute_key(ctx(flow_run_id=uuid.uuid4()), {"x": 1, "y": 2})


def test_none_is_neutral_in_sums() -> None:
    assert NONE + INPUTS == INPUTS
    assert INPUTS + NONE == INPUTS
    assert NONE + NONE == NONE
    assert NONE - "x" == NONE


def test_compounds_flatten_and_drop_duplicates() -> None:
    nested = (INPUTS + TASK_SOURCE) + (RUN_ID + FLOW_PARAMETERS) + INPUTS
    assert isinstance(nested, CompoundCachePolicy)
    assert nested.policies == (INPUTS, TASK_SOURCE, RUN_ID, FLOW_PARAMETERS)
    assert INPUTS + TaskSource() + RunId() == DEFAULT
    assert CompoundCachePolicy([DEFAULT, NONE, FlowParameters()]) == DEFAULT + FLOW_PARAMETERS


def test_compound_skips_parts_without_a_key() -> None:
    def nothing(context: CacheKeyContext, inputs: dict[str, Any]) -> str | None:
        return None

    def also_nothing(context: CacheKeyContext, inputs: dict[str, Any]) -> str | None:
        return None

    with_gap = RUN_ID + CacheKeyFnPolicy(nothing)
    key = with_gap.compute_key(ctx(), {})
    assert key is not None
    assert key == (RUN_ID + CacheKeyFnPolicy(also_nothing)).compute_key(ctx(), {})
    all_gaps = CacheKeyFnPolicy(nothing) + CacheKeyFnPolicy(also_nothing)
    assert all_gaps.compute_key(ctx(), {}) is None


def test_unhashable_inputs_disable_a_compound(caplog: pytest.LogCaptureFixture) -> None:
    # Skipping the inputs would give every call in the run the same key: wrong results.
    with caplog.at_level(logging.WARNING, logger="conveyor.cache"):
        assert DEFAULT.compute_key(ctx(), {"gen": (n for n in range(2))}) is None
        params = ctx(flow_parameters={"lock": threading.Lock()})
        assert (TASK_SOURCE + FLOW_PARAMETERS).compute_key(params, {}) is None
    assert len(caplog.records) == 2
    assert "input 'gen'" in caplog.records[0].getMessage()
    assert "flow parameter 'lock'" in caplog.records[1].getMessage()


def test_subtracting_from_a_compound_excludes_inputs() -> None:
    policy = DEFAULT - "debug"
    assert isinstance(policy, CompoundCachePolicy)
    assert policy.policies == (Inputs(exclude=["debug"]), TASK_SOURCE, RUN_ID)
    assert policy.compute_key(ctx(), {"x": 1, "debug": 1}) == policy.compute_key(
        ctx(), {"x": 1, "debug": 2}
    )
    assert RUN_ID + TASK_SOURCE - "debug" == RUN_ID + TASK_SOURCE


def test_a_user_policy_overriding_compute_key_works_in_a_compound() -> None:
    class Constant(CachePolicy):
        def compute_key(self, context: CacheKeyContext, inputs: dict[str, Any]) -> str | None:
            return "constant"

    assert (Constant() + RUN_ID).compute_key(ctx(), {}) == hash_objects("constant", FLOW_RUN.hex)
    with pytest.raises(NotImplementedError):
        CachePolicy().compute_key(ctx(), {})
