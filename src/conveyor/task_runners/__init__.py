"""Task runners: where a flow's submitted task runs execute.

Names load on first use: importing ThreadPoolTaskRunner does not load the process or Dask
runners.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.task_runners.base import TaskRunner
    from conveyor.task_runners.dask import DaskTaskRunner
    from conveyor.task_runners.processes import ProcessPoolTaskRunner
    from conveyor.task_runners.sequential import SequentialTaskRunner
    from conveyor.task_runners.threads import ThreadPoolTaskRunner

_WHERE = {
    "DaskTaskRunner": "conveyor.task_runners.dask",
    "ProcessPoolTaskRunner": "conveyor.task_runners.processes",
    "SequentialTaskRunner": "conveyor.task_runners.sequential",
    "TaskRunner": "conveyor.task_runners.base",
    "ThreadPoolTaskRunner": "conveyor.task_runners.threads",
}

__all__ = [
    "DaskTaskRunner",
    "ProcessPoolTaskRunner",
    "SequentialTaskRunner",
    "TaskRunner",
    "ThreadPoolTaskRunner",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor.task_runners' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
