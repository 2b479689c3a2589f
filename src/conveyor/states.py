"""State types and constructors, for code that returns or inspects states.

from conveyor.states import Completed, Failed

@task
def check(x: int) -> State:
    return Completed(data=x) if x > 0 else Failed(message="x must be positive")
"""

from conveyor.schemas.states import (
    AwaitingRetry,
    Cached,
    Cancelled,
    Cancelling,
    Completed,
    Crashed,
    Failed,
    FailedRunError,
    Late,
    MissingResultError,
    Paused,
    Pending,
    Retrying,
    Running,
    Scheduled,
    State,
    StateDetails,
    StateType,
    Suspended,
    TimedOut,
)

__all__ = [
    "AwaitingRetry",
    "Cached",
    "Cancelled",
    "Cancelling",
    "Completed",
    "Crashed",
    "Failed",
    "FailedRunError",
    "Late",
    "MissingResultError",
    "Paused",
    "Pending",
    "Retrying",
    "Running",
    "Scheduled",
    "State",
    "StateDetails",
    "StateType",
    "Suspended",
    "TimedOut",
]
