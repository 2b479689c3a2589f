"""Pydantic models shared by the client, the engine and (later) the server.

This package depends on pydantic only; it imports no other conveyor package.
"""

from conveyor.schemas.logs import LogRecordCreate
from conveyor.schemas.results import ResultRef
from conveyor.schemas.runs import FlowRun, TaskRun, TaskRunInput, TaskRunStateRecord
from conveyor.schemas.states import State, StateType

__all__ = [
    "FlowRun",
    "LogRecordCreate",
    "ResultRef",
    "State",
    "StateType",
    "TaskRun",
    "TaskRunInput",
    "TaskRunStateRecord",
]
