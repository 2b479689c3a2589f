"""One error tree for everything Conveyor raises; control signals live apart from it."""

from __future__ import annotations


class ConveyorError(Exception):
    """Base class of every error Conveyor raises on purpose."""


class ConfigurationError(ConveyorError, ValueError):
    """A flow, task or task runner was configured with invalid options."""


class ParameterValidationError(ConveyorError, TypeError):
    """The parameters of a flow call do not match its signature or type hints.

    ``errors`` lists every bad field as ``(field, message)`` pairs.
    """

    def __init__(self, target: str, errors: list[tuple[str, str]]) -> None:
        self.target = target
        self.errors = errors
        details = "; ".join(f"{field}: {message}" for field, message in errors)
        super().__init__(f"Invalid parameters for {target}: {details}")


class JobVariablesError(ConveyorError, ValueError):
    """Job variables for a work pool's base job template are unknown or do not fit its schema.

    ``errors`` lists every bad field as ``(field, message)`` pairs, the field a dotted path
    such as ``env.FOO`` or ``volumes[0]``, so an API can answer 422 naming each one.
    """

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        details = (f"job variable {f!r}: {m}" if f else f"job variables: {m}" for f, m in errors)
        super().__init__("; ".join(details))

    def __reduce__(self) -> tuple[type[JobVariablesError], tuple[list[tuple[str, str]]]]:
        # The default rebuilds from the message, which __init__ does not take.
        return (type(self), (self.errors,))


class UpstreamTaskError(ConveyorError):
    """A task did not run because a task it depends on did not complete."""


class TaskRunTimeoutError(ConveyorError, TimeoutError):
    """A task run exceeded its ``timeout_seconds``."""


class FlowRunTimeoutError(ConveyorError, TimeoutError):
    """A flow run exceeded its ``timeout_seconds``."""


class SerializationError(ConveyorError):
    """A value could not be serialized or deserialized by the chosen serializer."""


class ResultStorageError(ConveyorError):
    """A result could not be written to or read from its result store."""


class TaskRunnerError(ConveyorError):
    """A task runner could not start, reach its cluster, or ship a task."""


class NotInFlowError(ConveyorError, RuntimeError):
    """An operation that needs a running flow was called outside of one."""


class PauseError(ConveyorError, RuntimeError):
    """A flow run cannot be paused or suspended as asked (outside a flow, in a task, without
    a backend, or a suspension of a run that no deployment can start again)."""


class CancelledRun(ConveyorError):
    """The flow run was cancelled (``conveyor flow-run cancel``) before it finished."""


# -- control signals: not errors of Conveyor's, so not ConveyorErrors ----------------------
class PausedRunTimeout(Exception):
    """Raised by ``pause_flow_run`` (and ``suspend_flow_run``) when nobody resumed the run
    before its pause expired. The run is already Failed when this is raised: catching it
    lets the flow clean up, but not succeed."""
