"""Running one flow run: the state machine, and the sync and async drivers around it.

A flow run's final state follows these rules (also in docs/concepts/states.md):
1. The function raised: Failed with that exception (TimedOut past ``timeout_seconds``).
2. It returned a State, a future, or a collection holding them: Failed if any of them is
   not Completed, else Completed with the futures replaced by their results.
3. Otherwise, if a submitted task run failed and nothing looked at its outcome (no
   ``.result()``, ``.state``, downstream use or return), the flow is Failed with that
   task's exception: a failure is never dropped silently.
4. Otherwise Completed with the return value.
A Failed flow with retries left is retried after ``retry_delay_seconds``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import uuid
from typing import Any

from conveyor.client.recorder import RunRecorder
from conveyor.engine import runtime
from conveyor.engine.cancellation import FlowRunCancelled
from conveyor.engine.context import (
    FlowRunContext,
    RunEnvironment,
    TaskRunContext,
    _log_prints,
    current_tags,
    flow_run_context,
    task_run_context,
)
from conveyor.engine.effects import Call, RunHooks, Sleep, Steps, perform_async, perform_sync
from conveyor.engine.flows import Flow
from conveyor.engine.futures import ConveyorFuture
from conveyor.engine.ids import new_id
from conveyor.engine.inputs import iter_leaves, walk
from conveyor.engine.names import generate_run_name
from conveyor.engine.options import delay_for_attempt
from conveyor.engine.pauses import FlowRunSuspended
from conveyor.engine.run_logging import configure_logging, run_log_extra
from conveyor.exceptions import (
    CancelledRun,
    ConfigurationError,
    FlowRunTimeoutError,
    ParameterValidationError,
)
from conveyor.schemas.runs import FlowRun
from conveyor.schemas.states import (
    AwaitingRetry,
    Cancelled,
    Completed,
    Crashed,
    Failed,
    Pending,
    Retrying,
    Running,
    State,
    StateType,
    TimedOut,
)
from conveyor.task_runners.base import TaskRunner

logger = logging.getLogger("conveyor.flow_runs")


class FlowRunEngine:
    def __init__(
        self,
        flow: Flow[..., Any],
        parameters: dict[str, Any],
        *,
        existing: tuple[uuid.UUID, str | None] | None = None,
    ) -> None:
        """``existing``: the id and name of a run the server has already (a deployment's
        run, claimed by a worker): it is started (Pending -> Running), not created."""
        self.flow = flow
        self.existing = existing is not None
        self.parameters = parameters
        parent = flow_run_context.get()
        parent_task = task_run_context.get()
        if parent_task is not None:
            parent_env = parent_task.environment
            self.recorder: RunRecorder = parent_task.recorder
        elif parent is not None:
            parent_env = parent.environment
            self.recorder = parent.recorder
        else:
            parent_env = None
            self.recorder = runtime.get_recorder()
        settings = parent_env.settings if parent_env else runtime.get_settings()
        self.is_top_level = parent is None and parent_task is None
        run_id = existing[0] if existing is not None else new_id()
        log_prints = flow.log_prints
        if log_prints is None:
            log_prints = parent_env.log_prints if parent_env else False
        self.environment = RunEnvironment(
            settings=settings,
            flow_run_id=run_id,
            flow_run_name=None,
            flow_name=flow.name,
            flow_parameters=parameters,
            persist_result=flow.persist_result,
            result_storage=flow.result_storage,
            result_serializer=flow.result_serializer,
            log_prints=log_prints,
            tags=current_tags(),
        )
        self.flow_run = FlowRun(
            id=run_id,
            name=(existing[1] if existing is not None else None) or self._render_name(),
            flow_name=flow.name,
            flow_version=flow.version,
            parameters=parameters,
            tags=sorted(self.environment.tags),
            parent_flow_run_id=_parent_flow_run_id(parent, parent_task),
            parent_task_run_id=parent_task.task_run.id if parent_task else None,
            created=datetime.datetime.now(datetime.timezone.utc),
        )
        self.environment.flow_run_name = self.flow_run.name
        self.state: State = Pending()
        self.run_count = 0
        self.retry_delay = 0.0
        self.runner: TaskRunner | None = None
        self.context: FlowRunContext | None = None
        # A subflow stops with the run it belongs to; a top-level run is watched.
        self.cancel_requested = parent.cancel_requested if parent is not None else None

    def _render_name(self) -> str:
        template = self.flow.flow_run_name
        if template is None:
            return generate_run_name()
        try:
            if callable(template):
                return str(template())
            return template.format(**self.parameters)
        except (KeyError, IndexError, AttributeError) as exc:
            raise ConfigurationError(
                f"flow {self.flow.name!r}: flow_run_name {template!r} names {exc} "
                "which is not a parameter of the flow."
            ) from None

    def log_extra(self) -> dict[str, Any]:
        return run_log_extra(self.flow_run.id, self.flow_run.name)

    def propose(self, state: State) -> State:
        state.state_details.flow_run_id = self.flow_run.id
        state.state_details.transition_id = new_id()
        accepted = self.recorder.propose_flow_run_state(self.flow_run.id, state)
        self.state = accepted
        return accepted

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        configure_logging(self.environment.settings.logging_level)
        logger.info(
            "Beginning flow run %r for flow %r",
            self.flow_run.name,
            self.flow.name,
            extra=self.log_extra(),
        )

    def begin_attempt(self) -> None:
        self.run_count += 1
        if self.run_count == 1 and self.existing:
            self._start_existing()
        elif self.run_count == 1:
            # A run called in this process starts at once: it is created Running, one
            # round trip, not created Pending and then moved to Running.
            running = Running()
            running.state_details.flow_run_id = self.flow_run.id
            self.state = self.recorder.create_flow_run(self.flow_run, running)
            self._watch_for_cancellation()
        else:
            self.propose(Retrying())
        template = self.flow.task_runner
        self.runner = template.duplicate() if template is not None else _default_runner()
        try:
            self.runner.start(self.recorder)
        except BaseException as exc:
            # Nothing ran: end the run Failed (never leave it Running), then raise.
            self.runner = None
            failed = Failed(data=exc, message=f"The task runner could not start: {exc}")
            self.log_finished(failed)
            self.propose(failed)
            self.log_final()
            raise
        self.context = FlowRunContext(
            flow=self.flow,
            flow_run=self.flow_run,
            environment=self.environment,
            task_runner=self.runner,
            recorder=self.recorder,
            run_count=self.run_count,
            cancel_requested=self.cancel_requested,
        )

    def _start_existing(self) -> None:
        """Pending -> Running. A WAIT answer is obeyed by the transport (it sleeps and asks
        again); a refusal raises ``OrchestrationAborted`` and nothing runs."""
        from conveyor.client.transport import OrchestrationAborted

        accepted = self.propose(Running())
        if accepted.type is not StateType.RUNNING:
            raise OrchestrationAborted(
                f"The server made flow run {self.flow_run.id} {accepted.name} instead of "
                f"starting it: {accepted.message or 'no reason given'}"
            )
        self._watch_for_cancellation()

    def _watch_for_cancellation(self) -> None:
        if not self.is_top_level:
            return
        from conveyor.engine.concurrency import transport_of

        transport = transport_of(self.recorder)
        if transport is not None:
            from conveyor.engine.cancellation import watcher

            self.cancel_requested = watcher.watch(transport, self.flow_run.id)

    def enter(self) -> tuple[Any, Any]:
        return flow_run_context.set(self.context), _log_prints.set(self.environment.log_prints)

    def exit(self, tokens: tuple[Any, Any], error: BaseException | None) -> None:
        try:
            if self.runner is not None:
                # After a timeout or crash nothing should keep the caller waiting.
                self.runner.shutdown(
                    wait=error is None
                    or (isinstance(error, Exception) and not isinstance(error, FlowRunTimeoutError))
                )
        finally:
            flow_run_context.reset(tokens[0])
            _log_prints.reset(tokens[1])

    def succeed(self, value: Any) -> State | None:
        if isinstance(value, State):
            # The flow's own state: copied details, so that proposing it neither shows the
            # task's run id nor stamps a transition id onto the task's state.
            details = dataclasses.replace(value.state_details, task_run_id=None)
            candidate = dataclasses.replace(value, state_details=details)
        else:
            candidate = self._state_from_return(value)
        if candidate.is_completed() and self._should_persist():
            try:
                candidate.result_ref = self._persist(candidate.data)
            except Exception as exc:  # noqa: BLE001 - a result that cannot be stored fails the run
                candidate = Failed(data=exc, message=f"Result could not be persisted: {exc}")
        return self.conclude(candidate)

    def _state_from_return(self, value: Any) -> State:
        returned: list[State] = []
        for leaf, _ in iter_leaves(value):
            if type(leaf) is ConveyorFuture:
                leaf.mark_observed()
                returned.append(leaf.final_state())
            elif isinstance(leaf, State):
                returned.append(leaf)
        if isinstance(value, ConveyorFuture):
            returned = [value.final_state()]
        if returned:
            bad = [s for s in returned if not s.is_completed()]
            if bad:
                return Failed(
                    data=_first_exception(bad),
                    message=f"{len(bad)}/{len(returned)} states failed.",
                )
            return Completed(
                data=walk(value, _result_of)
                if not isinstance(value, ConveyorFuture)
                else returned[0].result()
            )
        unhandled = [
            f
            for f in (self.context.futures if self.context else [])
            if not f.observed and not f.final_state().is_completed()
        ]
        if unhandled:
            names = ", ".join(repr(f.task_name) for f in unhandled[:5])
            more = "" if len(unhandled) <= 5 else f" and {len(unhandled) - 5} more"
            return Failed(
                data=_first_exception([f.final_state() for f in unhandled]),
                message=(
                    f"{len(unhandled)} submitted task run(s) failed and the flow did not "
                    f"handle them: {names}{more}."
                ),
            )
        return Completed(data=value)

    def _should_persist(self) -> bool:
        persist = self.flow.persist_result
        if persist is None:
            persist = self.environment.settings.persist_results
        return persist

    def _persist(self, value: Any) -> Any:
        from conveyor.engine.results import get_result_store

        store = get_result_store(
            self.flow.result_storage, self.flow.result_serializer, self.environment.settings
        )
        return store.write(str(self.flow_run.id), value)

    def fail(self, exc: BaseException) -> State | None:
        if isinstance(exc, FlowRunSuspended):
            # Suspended: this execution ends here, the run waits (Suspended) for a resume
            # that schedules it again. No final state, no retry, no hooks.
            return exc.state
        if isinstance(exc, FlowRunCancelled):
            error = CancelledRun(str(exc))
            return self.conclude(Cancelled(data=error, message=str(exc)))
        if isinstance(exc, FlowRunTimeoutError):
            return self.conclude(TimedOut(data=exc, message=str(exc)))
        if isinstance(exc, asyncio.CancelledError):
            return self.conclude(Cancelled(data=exc, message="Flow run was cancelled."))
        if not isinstance(exc, Exception):
            return self.conclude(Crashed(data=exc, message=f"Flow run crashed: {exc!r}"))
        return self.conclude(
            Failed(data=exc, message=f"Flow run failed: {type(exc).__name__}: {exc}")
        )

    def conclude(self, candidate: State) -> State | None:
        """Propose a final state, or AwaitingRetry (returning None) when retries remain."""
        ended = self.context.ended if self.context is not None else None
        if ended is not None:
            # The server already ended the run while it was paused (expired, cancelled):
            # that is its outcome, whatever the function did after.
            self.log_finished(ended)
            self.state = ended
            return ended
        if candidate.type is StateType.FAILED and self.run_count <= self.flow.retries:
            self.retry_delay = delay_for_attempt(self.flow.retry_delays, self.run_count, None)
            logger.warning(
                "%s; retry %d of %d in %.3gs.",
                candidate.message,
                self.run_count,
                self.flow.retries,
                self.retry_delay,
                extra=self.log_extra(),
            )
            when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
                seconds=self.retry_delay
            )
            self.propose(AwaitingRetry(scheduled_time=when, message=candidate.message))
            return None
        data = candidate.data
        # Logged before it is proposed, so the line travels with the proposal (which
        # carries everything queued): a short flow's whole history is one request.
        self.log_finished(candidate)
        accepted = self.propose(candidate)
        if accepted is not candidate:
            logger.log(
                logging.INFO if accepted.is_completed() else logging.ERROR,
                "The server recorded state %r instead.",
                accepted,
                extra=self.log_extra(),
            )
        if accepted is not candidate and accepted.is_cancelled():
            # Cancelled while it ran (the server answered so): calling it raises that.
            if not isinstance(accepted.data, BaseException):
                accepted.data = CancelledRun(accepted.message or "The flow run was cancelled.")
        elif accepted is not candidate and not accepted.has_data():
            accepted.data = data
        return accepted

    def hooks_to_run(self) -> tuple[Any, ...]:
        name = {
            StateType.COMPLETED: "on_completion",
            StateType.FAILED: "on_failure",
            StateType.CRASHED: "on_crashed",
            StateType.CANCELLED: "on_cancellation",
        }.get(self.state.type)
        return self.flow.hooks.get(name, ()) if name else ()

    def log_finished(self, state: State) -> None:
        level = logging.INFO if state.is_completed() else logging.ERROR
        # A failure's traceback is recorded with the line, as a task's is: the UI shows it.
        failed = state.type is StateType.FAILED and isinstance(state.data, Exception)
        exc_info = state.data if failed and state.name != "TimedOut" else None
        logger.log(level, "Finished in state %r", state, exc_info=exc_info, extra=self.log_extra())

    def log_final(self) -> None:
        """The run is over: stop watching it, and ship what its hooks logged (if any)."""
        if self.is_top_level and self.cancel_requested is not None:
            from conveyor.engine.cancellation import watcher

            watcher.unwatch(self.flow_run.id)
        if self.is_top_level:
            self.recorder.flush(timeout=30)


def _parent_flow_run_id(
    parent: FlowRunContext | None, parent_task: TaskRunContext | None
) -> uuid.UUID | None:
    if parent_task is not None:
        return parent_task.environment.flow_run_id
    return parent.flow_run.id if parent is not None else None


def _default_runner() -> TaskRunner:
    from conveyor.task_runners.threads import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner()


def _result_of(value: Any, allowed: bool) -> Any:
    if type(value) is ConveyorFuture:
        return value.final_state().result()
    if isinstance(value, State):
        return value.result()
    return value


def _first_exception(states: list[State]) -> Any:
    for state in states:
        if isinstance(state.data, BaseException):
            return state.data
    return states[0].data if states else None


# -- the run, once, as steps for either driver (see effects.py) ----------------------------
def flow_run_steps(engine: FlowRunEngine) -> Steps:
    flow = engine.flow
    engine.start()
    state: State | None = None
    while state is None:
        engine.begin_attempt()
        if "on_running" in flow.hooks:
            hook_args = (flow, engine.flow_run, engine.state)
            yield RunHooks(flow.hooks["on_running"], hook_args, engine.log_extra())
        error: BaseException | None = None
        value: Any = None
        tokens = engine.enter()
        try:
            args, kwargs = flow.signature.call_args(engine.parameters)
            value = yield Call(
                flow.fn,
                args,
                kwargs,
                flow.timeout_seconds,
                engine.flow_run.name,
                FlowRunTimeoutError,
                flow.isasync,
            )
        except BaseException as exc:  # noqa: BLE001 - every outcome is recorded as a state
            error = exc
        finally:
            engine.exit(tokens, error)
        state = engine.succeed(value) if error is None else engine.fail(error)
        if state is None and engine.retry_delay > 0:
            yield Sleep(engine.retry_delay)
    hooks = engine.hooks_to_run()
    if hooks:
        yield RunHooks(hooks, (flow, engine.flow_run, state), engine.log_extra())
    engine.log_final()
    if error is not None and not isinstance(error, (Exception, FlowRunCancelled, FlowRunSuspended)):
        raise error
    return state


def run_flow(flow: Flow[..., Any], parameters: dict[str, Any], *, return_state: bool) -> Any:
    """Validate parameters (no run starts on bad input), then run the flow."""
    parameters = flow.validate(parameters)
    engine = FlowRunEngine(flow, parameters)
    if flow.isasync and runtime.caller_wants_awaitable():
        return _run_async_returning(engine, return_state)
    if flow.isasync:
        state = runtime.run_coro_sync(perform_async(flow_run_steps(engine)))
    else:
        state = perform_sync(flow_run_steps(engine))
    return state if return_state else state.result()


def run_existing_flow_run(
    flow: Flow[..., Any],
    flow_run_id: uuid.UUID,
    parameters: dict[str, Any],
    *,
    name: str | None = None,
) -> State | None:
    """Run ``flow`` as the flow run ``flow_run_id`` that the server already has (a
    deployment's run a worker claimed): it proposes Pending -> Running, then runs as any
    flow does, its task runs and logs recorded under that id, and proposes the final state.

    Returns the final state, or None when the server refused to start the run (it was
    cancelled or finished meanwhile); parameters that do not fit the flow fail the run.
    """
    from conveyor.client.transport import OrchestrationAborted

    engine = FlowRunEngine(flow, parameters, existing=(flow_run_id, name))
    try:
        engine.parameters = engine.environment.flow_parameters = flow.validate(parameters)
    except ParameterValidationError as exc:
        failed = Failed(data=exc, message=f"Invalid parameters: {exc}")
        engine.log_finished(failed)
        state = engine.propose(failed)
        engine.recorder.flush(timeout=30)
        return state
    try:
        if flow.isasync:
            return runtime.run_coro_sync(perform_async(flow_run_steps(engine)))
        return perform_sync(flow_run_steps(engine))
    except OrchestrationAborted as exc:
        logger.warning("Flow run %s did not start: %s", flow_run_id, exc)
        engine.recorder.flush(timeout=30)
        return None


async def _run_async_returning(engine: FlowRunEngine, return_state: bool) -> Any:
    state = await perform_async(flow_run_steps(engine))
    return state if return_state else state.result()
