"""The public surface of ``conveyor``: pinned names, and an import that stays light."""

from __future__ import annotations

import os
import subprocess
import sys

import conveyor

# The exact list in src/conveyor/__init__.py, in its order (ruff's RUF022 sort).
EXPECTED_ALL = [
    "DEFAULT",
    "FLOW_PARAMETERS",
    "INPUTS",
    "NONE",
    "RUN_ID",
    "TASK_SOURCE",
    "CachePolicy",
    "ConveyorFuture",
    "DaskTaskRunner",
    "Flow",
    "ProcessPoolTaskRunner",
    "SequentialTaskRunner",
    "State",
    "StateType",
    "Task",
    "TaskRunner",
    "ThreadPoolTaskRunner",
    "__version__",
    "allow_failure",
    "as_completed",
    "concurrency",
    "create_link_artifact",
    "create_markdown_artifact",
    "create_progress_artifact",
    "create_table_artifact",
    "exponential_backoff",
    "flow",
    "get_run_context",
    "get_run_logger",
    "pause_flow_run",
    "rate_limit",
    "resume_flow_run",
    "run_deployment",
    "serve",
    "suspend_flow_run",
    "tags",
    "task",
    "unmapped",
    "wait",
]


def python(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_all_is_pinned() -> None:
    assert conveyor.__all__ == EXPECTED_ALL
    assert len(set(conveyor.__all__)) == len(conveyor.__all__)


def test_every_public_name_resolves() -> None:
    for name in conveyor.__all__:
        assert getattr(conveyor, name) is not None, name
    assert set(dir(conveyor)) >= set(conveyor.__all__)


def test_public_names_are_the_engine_objects() -> None:
    from conveyor.engine.cache_policies import INPUTS
    from conveyor.engine.flows import Flow, flow
    from conveyor.engine.tasks import Task, task
    from conveyor.schemas.states import State

    assert conveyor.flow is flow
    assert conveyor.Flow is Flow
    assert conveyor.task is task
    assert conveyor.Task is Task
    assert conveyor.State is State
    assert conveyor.INPUTS is INPUTS
    assert isinstance(conveyor.__version__, str)


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        conveyor.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_conveyor_loads_no_heavy_modules() -> None:
    out = python(
        "import conveyor, sys; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fastapi','sqlalchemy','dask','distributed','fsspec','cloudpickle',"
        "'pydantic_settings')))"
    )
    assert out == "[]"


def test_running_a_flow_loads_no_server_or_cluster_modules() -> None:
    # With no backend; the embedded backend runs the server in-process by design.
    out = python(
        "import os, sys\n"
        "os.environ['CONVEYOR_BACKEND'] = 'none'\n"
        "from conveyor import flow, task\n"
        "@task\n"
        "def t(x: int) -> int:\n"
        "    return x + 1\n"
        "@flow\n"
        "def f() -> int:\n"
        "    return t.submit(1).result() + t(1)\n"
        "assert f() == 4\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fastapi','sqlalchemy','dask','distributed','pydantic_settings')))"
    )
    assert out.splitlines()[-1] == "[]"


def test_decorating_flows_and_tasks_defers_pydantic_and_asyncio() -> None:
    # Scripts and tools that only define flows (or import them to inspect) start fast;
    # the schemas load when the first run starts.
    out = python(
        "import sys\n"
        "from conveyor import flow, task, unmapped, ThreadPoolTaskRunner\n"
        "@task\n"
        "def t(x: int) -> int:\n"
        "    return x\n"
        "@flow(task_runner=ThreadPoolTaskRunner(2))\n"
        "def f() -> None:\n"
        "    t.map([1], unmapped(2))\n"
        "print(sorted(m for m in sys.modules if m in ('pydantic', 'asyncio')))"
    )
    assert out == "[]"
