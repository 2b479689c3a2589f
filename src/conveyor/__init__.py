"""Conveyor: workflow orchestration for Python.

Names load on first use (PEP 562), so ``import conveyor`` costs a few milliseconds and
tools such as the CLI never pay for pydantic, the engine or Dask unless they need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.artifacts import (
        create_link_artifact,
        create_markdown_artifact,
        create_progress_artifact,
        create_table_artifact,
    )
    from conveyor.deployments.run import run_deployment
    from conveyor.deployments.serve import serve
    from conveyor.engine.cache_policies import (
        DEFAULT,
        FLOW_PARAMETERS,
        INPUTS,
        NONE,
        RUN_ID,
        TASK_SOURCE,
        CachePolicy,
    )
    from conveyor.engine.concurrency import concurrency, rate_limit
    from conveyor.engine.context import get_run_context, tags
    from conveyor.engine.flows import Flow, flow
    from conveyor.engine.futures import ConveyorFuture, as_completed, wait
    from conveyor.engine.inputs import allow_failure, unmapped
    from conveyor.engine.options import exponential_backoff
    from conveyor.engine.pauses import pause_flow_run, resume_flow_run, suspend_flow_run
    from conveyor.engine.run_logging import get_run_logger
    from conveyor.engine.tasks import Task, task
    from conveyor.schemas.states import State, StateType
    from conveyor.task_runners import (
        DaskTaskRunner,
        ProcessPoolTaskRunner,
        SequentialTaskRunner,
        TaskRunner,
        ThreadPoolTaskRunner,
    )

__version__ = "0.1.0"

_WHERE = {
    "DEFAULT": "conveyor.engine.cache_policies",
    "FLOW_PARAMETERS": "conveyor.engine.cache_policies",
    "INPUTS": "conveyor.engine.cache_policies",
    "NONE": "conveyor.engine.cache_policies",
    "RUN_ID": "conveyor.engine.cache_policies",
    "TASK_SOURCE": "conveyor.engine.cache_policies",
    "CachePolicy": "conveyor.engine.cache_policies",
    "ConveyorFuture": "conveyor.engine.futures",
    "DaskTaskRunner": "conveyor.task_runners.dask",
    "Flow": "conveyor.engine.flows",
    "ProcessPoolTaskRunner": "conveyor.task_runners.processes",
    "SequentialTaskRunner": "conveyor.task_runners.sequential",
    "State": "conveyor.schemas.states",
    "StateType": "conveyor.schemas.states",
    "Task": "conveyor.engine.tasks",
    "TaskRunner": "conveyor.task_runners.base",
    "ThreadPoolTaskRunner": "conveyor.task_runners.threads",
    "allow_failure": "conveyor.engine.inputs",
    "as_completed": "conveyor.engine.futures",
    "concurrency": "conveyor.engine.concurrency",
    "create_link_artifact": "conveyor.artifacts",
    "create_markdown_artifact": "conveyor.artifacts",
    "create_progress_artifact": "conveyor.artifacts",
    "create_table_artifact": "conveyor.artifacts",
    "exponential_backoff": "conveyor.engine.options",
    "flow": "conveyor.engine.flows",
    "get_run_context": "conveyor.engine.context",
    "get_run_logger": "conveyor.engine.run_logging",
    "pause_flow_run": "conveyor.engine.pauses",
    "rate_limit": "conveyor.engine.concurrency",
    "resume_flow_run": "conveyor.engine.pauses",
    "run_deployment": "conveyor.deployments.run",
    "serve": "conveyor.deployments.serve",
    "suspend_flow_run": "conveyor.engine.pauses",
    "tags": "conveyor.engine.context",
    "task": "conveyor.engine.tasks",
    "unmapped": "conveyor.engine.inputs",
    "wait": "conveyor.engine.futures",
}

__all__ = [
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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
