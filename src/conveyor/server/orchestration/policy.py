"""The flow-run policy and the one function that changes a flow run's state."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy.orm import Session

from conveyor.schemas.api import OrchestrationResult, OrchestrationStatus
from conveyor.schemas.states import Cancelled, Cancelling, Running, Scheduled, State, StateType
from conveyor.server.models import flow_runs
from conveyor.server.orchestration.rules import (
    FinishCancellation,
    PreventDuplicateClaims,
    ProtectTerminalStates,
    RefuseExpiredResume,
    ResumeOnlyByRequest,
    RetryFailedFlowRuns,
    Rule,
    TransitionContext,
    WaitForScheduledTime,
)

FLOW_RUN_POLICY: tuple[Rule, ...] = (
    ProtectTerminalStates(),
    FinishCancellation(),
    PreventDuplicateClaims(),
    ResumeOnlyByRequest(),
    RefuseExpiredResume(),
    WaitForScheduledTime(),
    RetryFailedFlowRuns(),
)


class FlowRunNotFound(LookupError):
    pass


class ResumeRefused(Exception):
    """The run cannot be resumed (not paused, or its pause expired): the reason."""


class RunInputInvalid(ValueError):
    """The input given to resume a run does not fit the schema its pause stored;
    ``errors`` are ``(field, message)`` pairs, the field under ``run_input``."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors))


def set_flow_run_state(
    session: Session,
    flow_run_id: uuid.UUID,
    proposed: State,
    *,
    force: bool = False,
    now: datetime.datetime | None = None,
    resuming: bool = False,
) -> OrchestrationResult:
    """Propose ``proposed`` for a run; the policy accepts, replaces, delays or refuses it.

    ``resuming`` marks a resume of a paused run (only ``resume_flow_run`` sets it).

    The run's row is locked for the decision (``SELECT ... FOR UPDATE`` on PostgreSQL; the
    write transaction itself on SQLite), so of two racing proposals one decides first and
    the other sees its outcome. A proposal whose transition id was already recorded is
    answered with the state it produced the first time and writes nothing.
    """
    transition_id = proposed.state_details.transition_id
    locked = flow_runs.lock_for_transition(session, flow_run_id, transition_id)
    if locked is None:
        raise FlowRunNotFound(flow_run_id)
    run = locked.run
    if locked.repeated is not None:
        # Answer as the first time: a proposal that was replaced (e.g. Failed by
        # AwaitingRetry) is still replaced, so a retrying client learns the real state.
        first = flow_runs.state_from_row(locked.repeated)
        same = first.type is proposed.type and first.name == (proposed.name or "")[:50]
        return OrchestrationResult(
            status=OrchestrationStatus.ACCEPT if same else OrchestrationStatus.REJECT,
            state=first,
            reason="Repeated proposal; the state it made the first time stands.",
        )
    current = locked.current
    ctx = TransitionContext(
        run=run,
        initial=flow_runs.state_from_row(current) if current is not None else None,
        proposed=proposed,
        now=now or datetime.datetime.now(datetime.timezone.utc),
        resuming=resuming,
    )
    if not force:
        for rule in FLOW_RUN_POLICY:
            if rule.applies(ctx):
                rule.before_transition(ctx)
                if ctx.status is not OrchestrationStatus.ACCEPT:
                    ctx.decided_by = rule.name
                    break
    if ctx.status is OrchestrationStatus.ACCEPT:
        flow_runs.record_state(session, run, proposed)
        was = ctx.initial.name if ctx.initial is not None else "no state"
        reason = (
            f"Forced from {was} to {proposed.name}; the rules were not consulted."
            if force
            else f"Accepted: {was} -> {proposed.name}."
        )
        return OrchestrationResult(status=ctx.status, state=proposed, reason=reason)
    if ctx.status is OrchestrationStatus.REJECT:
        assert ctx.replacement is not None
        ctx.replacement.state_details.transition_id = transition_id
        flow_runs.record_state(session, run, ctx.replacement)
        return OrchestrationResult(status=ctx.status, state=ctx.replacement, reason=ctx.reason)
    return OrchestrationResult(
        status=ctx.status, state=ctx.initial, reason=ctx.reason, delay_seconds=ctx.delay_seconds
    )


# Runs that have started: cancelling one asks its engine (or, later, its worker) to stop.
# A paused run's process waits for it (it is started too), unless the run was suspended:
# then no process is left to ask, and it is Cancelled at once.
_STARTED = frozenset({StateType.RUNNING, StateType.CANCELLING, StateType.PAUSED})
SUSPENDED_STATE_NAME = "Suspended"
RESUMED_STATE_NAME = "Resumed"


def cancel_flow_run(
    session: Session,
    flow_run_id: uuid.UUID,
    *,
    now: datetime.datetime | None = None,
    message: str | None = None,
) -> OrchestrationResult:
    """Cancel a run: one that has not started is Cancelled at once; a running one becomes
    Cancelling, and ends Cancelled when its engine next reports (see FinishCancellation).
    A finished run is left as it is (ABORT). ``message`` says why (default: by request)."""
    run = flow_runs.read_flow_run(session, flow_run_id, for_update=True)
    if run is None:
        raise FlowRunNotFound(flow_run_id)
    started = (
        run.state_type is not None
        and StateType(run.state_type) in _STARTED
        and run.state_name != SUSPENDED_STATE_NAME
    )
    state = (
        Cancelling(message=message or "Cancelled by request.")
        if started
        else Cancelled(message=message or "Cancelled by request before it started.")
    )
    state.state_details.transition_id = uuid.uuid4()
    return set_flow_run_state(session, flow_run_id, state, now=now)


def resume_flow_run(
    session: Session,
    flow_run_id: uuid.UUID,
    run_input: dict[str, Any] | None = None,
    *,
    now: datetime.datetime | None = None,
) -> OrchestrationResult:
    """Resume a paused run with ``run_input``, checked against the schema its pause stored.

    A pause becomes Running (named Resumed) and its waiting process carries on; a
    suspension becomes Scheduled (Resumed), due now, for any worker of its pool to claim.
    The input travels in the Resumed state's details, with the pause's key: written in the
    same transaction as the transition, kept in the run's history (so the run's next
    execution finds it for the same key), and deleted with the run. No table of its own.

    Raises ``FlowRunNotFound``; ``RunInputInvalid`` (nothing written) when the input does
    not fit; ``ResumeRefused`` with the reason when the run is not paused or its pause
    expired (rule ``RefuseExpiredResume``).
    """
    from conveyor.schemas.deployments import parameter_errors

    run = flow_runs.read_flow_run(session, flow_run_id, for_update=True)
    if run is None:
        raise FlowRunNotFound(flow_run_id)
    initial = flow_runs.current_state(session, run)
    if initial is None or initial.type is not StateType.PAUSED:
        was = f"{initial.name} ({initial.type.value})" if initial is not None else "stateless"
        raise ResumeRefused(f"The run is {was}, not paused; only a paused run can be resumed.")
    details = initial.state_details
    schema = details.run_input_schema
    if schema is not None:
        if run_input is None:
            raise RunInputInvalid([("run_input", "is required: the paused run waits for input")])
        errors = parameter_errors(schema, run_input)
        if errors:
            raise RunInputInvalid([(_under_input(field), message) for field, message in errors])
    now = now or datetime.datetime.now(datetime.timezone.utc)
    resumed = (
        Scheduled(now, name=RESUMED_STATE_NAME, message="Resumed; due to run again.")
        if details.pause_reschedule
        else Running(name=RESUMED_STATE_NAME, message="Resumed.")
    )
    resumed.state_details.pause_key = details.pause_key
    resumed.state_details.run_input = run_input
    resumed.state_details.transition_id = uuid.uuid4()
    result = set_flow_run_state(session, flow_run_id, resumed, now=now, resuming=True)
    if result.status is not OrchestrationStatus.ACCEPT:
        raise ResumeRefused(result.reason or "The run could not be resumed.")
    if details.pause_reschedule:
        run.worker_id = None  # any worker of its pool may claim it, as after a reschedule
        # Its next start (Pending -> Running) goes on with the same attempt, as a resumed
        # pause does: being suspended must not use up the retries the server grants.
        run.run_count = max(run.run_count - 1, 0)
    return result


def _under_input(field: str) -> str:
    if not field:
        return "run_input"
    return f"run_input{field}" if field.startswith("[") else f"run_input.{field}"
