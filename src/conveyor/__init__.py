"""Conveyor: workflow orchestration for Python.

Only light modules load here; FastAPI, SQLAlchemy, Dask and fsspec load when used.
"""

import conveyor.engine.results as _results  # noqa: F401  registers State.result() loading
from conveyor.engine.cache_policies import (
    DEFAULT,
    FLOW_PARAMETERS,
    INPUTS,
    NONE,
    RUN_ID,
    TASK_SOURCE,
    CachePolicy,
)
from conveyor.engine.context import get_run_context, tags
from conveyor.engine.flows import Flow, flow
from conveyor.engine.futures import ConveyorFuture, as_completed, wait
from conveyor.engine.inputs import allow_failure, unmapped
from conveyor.engine.options import exponential_backoff
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
    "exponential_backoff",
    "flow",
    "get_run_context",
    "get_run_logger",
    "tags",
    "task",
    "unmapped",
    "wait",
]
