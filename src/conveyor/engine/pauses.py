"""Pausing a flow run until someone resumes it, optionally with input; suspending one.

``pause_flow_run`` proposes Paused and blocks the flow's process, polling the run every
``POLL_SECONDS`` (its process keeps heartbeating meanwhile, so the reaper leaves it
alone) until it is resumed (Running again: the call returns the input), cancelled
(``FlowRunCancelled``, as at a task call) or its pause expires (the run is made Failed and
``PausedRunTimeout`` is raised).

``suspend_flow_run`` proposes Paused named Suspended and ends the process's execution of
the run without a final state (``FlowRunSuspended``, caught by the engine): nothing runs
until a resume makes the run Scheduled, and a worker runs it again from the start. In
that execution the same call (same key) finds the resume in the run's history and
returns its input at once. A pause's key defaults to its place in the run's calls
(``pause-1``, ``pause-2``, ...), so a flow that pauses in the same order each time needs
no keys.

``resume_flow_run`` resumes a paused run, from anywhere (another process, the CLI).
"""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any, TypeVar, overload

from pydantic import BaseModel

from conveyor.engine.cancellation import FlowRunCancelled
from conveyor.engine.context import FlowRunContext, flow_run_context, task_run_context
from conveyor.exceptions import CancelledRun, ConveyorError, PausedRunTimeout, PauseError
from conveyor.schemas.states import (
    TERMINAL_STATE_TYPES,
    Cancelled,
    Failed,
    Paused,
    State,
    StateType,
    Suspended,
)

if TYPE_CHECKING:
    from conveyor.client.transport import ApiTransport
    from conveyor.schemas.api import OrchestrationResult

logger = logging.getLogger("conveyor.flow_runs")

M = TypeVar("M", bound=BaseModel)

POLL_SECONDS = 0.5
"""How often a paused run's process asks whether it was resumed."""
DEFAULT_TIMEOUT_SECONDS = 3600.0
RESUMED_STATE_NAME = "Resumed"
_KEY_COUNTER = "__conveyor_pause__"


class FlowRunSuspended(BaseException):
    """Raised inside a flow run that suspended itself: the engine ends this execution
    without proposing a final state (the run stays Suspended until resumed)."""

    def __init__(self, state: State) -> None:
        super().__init__(state.message or "The flow run was suspended.")
        self.state = state


@overload
def pause_flow_run(
    timeout: float = DEFAULT_TIMEOUT_SECONDS, wait_for_input: None = None, key: str | None = None
) -> None: ...
@overload
def pause_flow_run(timeout: float, wait_for_input: type[M], key: str | None = None) -> M: ...
@overload
def pause_flow_run(
    timeout: float = DEFAULT_TIMEOUT_SECONDS, *, wait_for_input: type[M], key: str | None = None
) -> M: ...
def pause_flow_run(
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    wait_for_input: type[BaseModel] | None = None,
    key: str | None = None,
) -> BaseModel | None:
    """Pause the current flow run until it is resumed (``resume_flow_run``, the API or
    ``conveyor flow-run resume``); its process waits.

    ``timeout`` seconds at most: then the run fails and this raises ``PausedRunTimeout``.
    With ``wait_for_input`` (a pydantic model), the resume must give input fitting the
    model, and this returns it as an instance of the model; otherwise it returns None.
    ``key`` names the pause (default: its place among this run's pauses).
    """
    return _pause(timeout, wait_for_input, key, reschedule=False)


@overload
def suspend_flow_run(
    timeout: float = DEFAULT_TIMEOUT_SECONDS, wait_for_input: None = None, key: str | None = None
) -> None: ...
@overload
def suspend_flow_run(timeout: float, wait_for_input: type[M], key: str | None = None) -> M: ...
@overload
def suspend_flow_run(
    timeout: float = DEFAULT_TIMEOUT_SECONDS, *, wait_for_input: type[M], key: str | None = None
) -> M: ...
def suspend_flow_run(
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    wait_for_input: type[BaseModel] | None = None,
    key: str | None = None,
) -> BaseModel | None:
    """Suspend the current run of a deployment: it becomes Suspended and its process ends
    (no final state; the worker does not count it crashed). Resumed, it is Scheduled and a
    worker runs the flow again from the start; there the same call returns the input the
    resume gave (None without ``wait_for_input``). Work done before the suspension is done
    again unless its tasks are cached or their results persisted.

    Not resumed within ``timeout`` seconds, the run fails (the server's ``pauses``
    service). Only a deployment's run can be suspended: nothing else could start it again.
    """
    return _pause(timeout, wait_for_input, key, reschedule=True)


def resume_flow_run(
    flow_run_id: uuid.UUID | str, run_input: dict[str, Any] | None = None
) -> OrchestrationResult:
    """Resume a paused or suspended run, giving it ``run_input`` if its pause asked for
    input. ``ApiError`` with status 422 (naming the field) when the input does not fit,
    409 when the run is not paused or its pause expired, 404 for an unknown run."""
    from conveyor.client.embedded import connect
    from conveyor.client.portal import Portal
    from conveyor.engine import runtime

    run_id = flow_run_id if isinstance(flow_run_id, uuid.UUID) else uuid.UUID(flow_run_id)
    context = flow_run_context.get()
    settings = context.environment.settings if context is not None else runtime.get_settings()

    async def resume() -> OrchestrationResult:
        client = await connect(settings)
        try:
            return await client.resume_flow_run(run_id, run_input)
        finally:
            await client.aclose()

    # A thread of its own: works from sync code and inside a running event loop alike.
    portal = Portal("conveyor-resume")
    try:
        return portal.call(resume())
    finally:
        portal.stop()


# -- the pause itself ----------------------------------------------------------------------
def _pause(
    timeout: float, model: type[BaseModel] | None, key: str | None, *, reschedule: bool
) -> BaseModel | None:
    what = "suspend_flow_run" if reschedule else "pause_flow_run"
    context = flow_run_context.get()
    if context is None:
        raise PauseError(f"{what}() must be called inside a flow.")
    if task_run_context.get() is not None:
        raise PauseError(f"{what}() pauses a flow run: call it in the flow, not in a task.")
    if not timeout > 0:
        raise ValueError(f"{what}(timeout={timeout!r}): the timeout must be a positive number.")
    if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{what}(wait_for_input=...) takes a pydantic model class, not {model!r}")
    from conveyor.engine.concurrency import transport_of

    transport = transport_of(context.recorder)
    if transport is None:
        raise PauseError(
            f"{what}() needs a backend to resume the run from (a server, or the local "
            "database); this run is recorded nowhere (CONVEYOR_BACKEND=none)."
        )
    if key is None:
        key = f"pause-{context.next_dynamic_key(_KEY_COUNTER) + 1}"
    run_id = context.flow_run.id
    # The server must know the run (a flow called in-process is created with the next
    # batch) before its history can be read.
    context.recorder.flush(timeout=30)
    if reschedule:
        run = transport.call(lambda client: client.read_flow_run(run_id))
        if run.deployment_id is None:
            raise PauseError(
                "suspend_flow_run() suspends a run of a deployment, which a worker starts "
                "again when it is resumed; this run has no deployment (nothing could start "
                "it again). Use pause_flow_run() to wait in this process instead."
            )
    resumed = _resumed_input(transport, run_id, key)
    if resumed is not None:
        logger.info("Pause %r was resumed before; carrying on with its input.", key)
        return _as_model(model, resumed[0])

    deadline = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=timeout)
    state = _paused_state(key, deadline, model, reschedule)
    accepted = context.recorder.propose_flow_run_state(run_id, state)
    if accepted.type in (StateType.CANCELLING, StateType.CANCELLED):
        _ended_cancelled(context, accepted)
    if accepted.type is not StateType.PAUSED:
        raise PauseError(f"The server made the run {accepted.name} instead of pausing it.")
    how = (
        "resume it to schedule it again"
        if reschedule
        else f"waiting until {deadline.isoformat(timespec='seconds')}"
    )
    logger.info(
        "Flow run %r %s (pause %r); %s: conveyor flow-run resume %s",
        context.flow_run.name,
        "suspended" if reschedule else "paused",
        key,
        how,
        run_id,
    )
    if reschedule:
        raise FlowRunSuspended(accepted)
    return _as_model(model, _wait(context, transport, key, deadline))


def _paused_state(
    key: str, deadline: datetime.datetime, model: type[BaseModel] | None, reschedule: bool
) -> State:
    until = deadline.isoformat(timespec="seconds")
    if reschedule:
        state = Suspended(message=f"Suspended until resumed (pause {key!r}, expires {until}).")
    else:
        state = Paused(message=f"Paused until resumed (pause {key!r}, expires {until}).")
    details = state.state_details
    details.pause_timeout = deadline
    details.pause_reschedule = reschedule
    details.pause_key = key
    details.run_input_schema = model.model_json_schema() if model is not None else None
    details.transition_id = uuid.uuid4()
    return state


def _wait(
    context: FlowRunContext, transport: ApiTransport, key: str, deadline: datetime.datetime
) -> dict[str, Any] | None:
    """Poll until the run leaves Paused; the resume's input."""
    run_id = context.flow_run.id
    while True:
        left = (deadline - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        if left <= 0:
            break
        time.sleep(min(POLL_SECONDS, left))
        try:
            run = transport.call(lambda client: client.read_flow_run(run_id))
        except ConveyorError:
            logger.debug("Flow run %s: could not read it while paused.", run_id, exc_info=True)
            continue  # an unreachable server only delays the answer
        if run.state_type is StateType.PAUSED:
            continue
        if run.state_type is StateType.RUNNING:
            found = _resumed_input(transport, run_id, key)
            logger.info("Flow run %r resumed (pause %r).", context.flow_run.name, key)
            return found[0] if found is not None else None
        if run.state_type in (StateType.CANCELLING, StateType.CANCELLED):
            if run.state_type is StateType.CANCELLED:
                _ended_cancelled(context, Cancelled(message="Cancelled while paused."))
            raise FlowRunCancelled(f"Flow run {run_id} was cancelled while paused.")
        if run.state_type is StateType.FAILED:
            break  # the server's pauses service expired it first
        ended = PauseError(f"Flow run {run_id} became {run.state_name} while paused.")
        if run.state_type in TERMINAL_STATE_TYPES:
            # Ended by someone else (e.g. the reaper): that stands as the run's outcome.
            context.ended = State(
                type=run.state_type, name=run.state_name, message=str(ended), data=ended
            )
        raise ended
    error = PausedRunTimeout(
        f"Flow run {context.flow_run.name!r} was paused (pause {key!r}) and not resumed "
        f"before its pause expired at {deadline.isoformat(timespec='seconds')}."
    )
    failed = Failed(data=error, message=str(error))
    failed.state_details.flow_run_id = run_id
    failed.state_details.transition_id = uuid.uuid4()
    from conveyor.client.transport import OrchestrationAborted

    try:
        accepted = context.recorder.propose_flow_run_state(run_id, failed)
    except OrchestrationAborted:
        accepted = failed  # already final on the server (the pauses service failed it)
    if not accepted.has_data():
        accepted.data = error
    context.ended = accepted
    raise error


def _ended_cancelled(context: FlowRunContext, state: State) -> None:
    message = state.message or "The flow run was cancelled while paused."
    if state.type is StateType.CANCELLED:
        context.ended = Cancelled(data=CancelledRun(message), message=message)
    raise FlowRunCancelled(message)


def _resumed_input(
    transport: ApiTransport, run_id: uuid.UUID, key: str
) -> tuple[dict[str, Any] | None] | None:
    """The input of the latest resume of pause ``key`` in the run's history (as a 1-tuple:
    the input may be None), or None if that pause was never resumed."""
    states = transport.call(lambda client: client.read_flow_run_states(run_id))
    for state in reversed(states):
        if state.name == RESUMED_STATE_NAME and state.details.get("pause_key") == key:
            run_input = state.details.get("run_input")
            return (run_input if isinstance(run_input, dict) else None,)
    return None


def _as_model(model: type[BaseModel] | None, run_input: dict[str, Any] | None) -> BaseModel | None:
    if model is None:
        return None
    return model.model_validate(run_input or {})
