"""The flow-run policy and the one function that changes a flow run's state."""

from __future__ import annotations

import datetime
import uuid

from sqlalchemy.orm import Session

from conveyor.schemas.api import OrchestrationResult, OrchestrationStatus
from conveyor.schemas.states import Cancelled, Cancelling, State, StateType
from conveyor.server.models import flow_runs
from conveyor.server.orchestration.rules import (
    FinishCancellation,
    PreventDuplicateClaims,
    ProtectTerminalStates,
    RetryFailedFlowRuns,
    Rule,
    TransitionContext,
    WaitForScheduledTime,
)

FLOW_RUN_POLICY: tuple[Rule, ...] = (
    ProtectTerminalStates(),
    FinishCancellation(),
    PreventDuplicateClaims(),
    WaitForScheduledTime(),
    RetryFailedFlowRuns(),
)


class FlowRunNotFound(LookupError):
    pass


def set_flow_run_state(
    session: Session,
    flow_run_id: uuid.UUID,
    proposed: State,
    *,
    force: bool = False,
    now: datetime.datetime | None = None,
) -> OrchestrationResult:
    """Propose ``proposed`` for a run; the policy accepts, replaces, delays or refuses it.

    The run's row is locked for the decision (``SELECT ... FOR UPDATE`` on PostgreSQL; the
    write transaction itself on SQLite), so of two racing proposals one decides first and
    the other sees its outcome. A proposal whose transition id was already recorded is
    answered with the state it produced the first time and writes nothing.
    """
    run = flow_runs.read_flow_run(session, flow_run_id, for_update=True)
    if run is None:
        raise FlowRunNotFound(flow_run_id)
    transition_id = proposed.state_details.transition_id
    if transition_id is not None:
        seen = flow_runs.state_by_transition(session, flow_run_id, transition_id)
        if seen is not None:
            # Answer as the first time: a proposal that was replaced (e.g. Failed by
            # AwaitingRetry) is still replaced, so a retrying client learns the real state.
            first = flow_runs.state_from_row(seen)
            same = first.type is proposed.type and first.name == (proposed.name or "")[:50]
            return OrchestrationResult(
                status=OrchestrationStatus.ACCEPT if same else OrchestrationStatus.REJECT,
                state=first,
                reason="Repeated proposal; the state it made the first time stands.",
            )
    ctx = TransitionContext(
        run=run,
        initial=flow_runs.current_state(session, run),
        proposed=proposed,
        now=now or datetime.datetime.now(datetime.timezone.utc),
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
_STARTED = frozenset({StateType.RUNNING, StateType.CANCELLING})


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
    started = run.state_type is not None and StateType(run.state_type) in _STARTED
    state = (
        Cancelling(message=message or "Cancelled by request.")
        if started
        else Cancelled(message=message or "Cancelled by request before it started.")
    )
    state.state_details.transition_id = uuid.uuid4()
    return set_flow_run_state(session, flow_run_id, state, now=now)
