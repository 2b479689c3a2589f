"""Task runners: where a flow's submitted task runs execute."""

from conveyor.task_runners.base import TaskRunner
from conveyor.task_runners.dask import DaskTaskRunner
from conveyor.task_runners.processes import ProcessPoolTaskRunner
from conveyor.task_runners.sequential import SequentialTaskRunner
from conveyor.task_runners.threads import ThreadPoolTaskRunner

__all__ = [
    "DaskTaskRunner",
    "ProcessPoolTaskRunner",
    "SequentialTaskRunner",
    "TaskRunner",
    "ThreadPoolTaskRunner",
]
