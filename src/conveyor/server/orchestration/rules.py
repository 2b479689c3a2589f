"""The rules. Each is a small named class: which transitions it looks at, and what it
decides before the transition is written. The first rule that does not accept wins."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import ClassVar

from conveyor.schemas.api import OrchestrationStatus
from conveyor.schemas.states import (
    TERMINAL_STATE_TYPES,
    AwaitingRetry,
    Cancelled,
    State,
    StateType,
)
from conveyor.server.database import orm

ALL_TYPES: frozenset[StateType | None] = frozenset([*StateType, None])

# Clocks differ between clients and server: a run proposed to start a moment early is fine.
SCHEDULE_TOLERANCE = datetime.timedelta(seconds=1)


@dataclass
class TransitionContext:
    run: orm.FlowRun
    initial: State | None
    proposed: State
    now: datetime.datetime
    status: OrchestrationStatus = OrchestrationStatus.ACCEPT
    replacement: State | None = None
    reason: str | None = None
    delay_seconds: float | None = None
    decided_by: str | None = None
    resuming: bool = False
    """The proposal is a resume of a paused run (``policy.resume_flow_run``)."""

    @property
    def initial_type(self) -> StateType | None:
        return self.initial.type if self.initial is not None else None

    def reject(self, replacement: State, reason: str) -> None:
        """Record ``replacement`` instead of the proposed state."""
        self.status = OrchestrationStatus.REJECT
        self.replacement, self.reason = replacement, reason

    def wait(self, delay_seconds: float, reason: str) -> None:
        """Record nothing; the client should propose again after the delay."""
        self.status, self.delay_seconds, self.reason = (
            OrchestrationStatus.WAIT,
            delay_seconds,
            reason,
        )

    def abort(self, reason: str) -> None:
        """Record nothing; the transition will never be allowed."""
        self.status, self.reason = OrchestrationStatus.ABORT, reason


class Rule:
    FROM_STATES: ClassVar[frozenset[StateType | None]] = ALL_TYPES
    TO_STATES: ClassVar[frozenset[StateType]] = frozenset(StateType)

    @property
    def name(self) -> str:
        return type(self).__name__

    def applies(self, ctx: TransitionContext) -> bool:
        return ctx.initial_type in self.FROM_STATES and ctx.proposed.type in self.TO_STATES

    def before_transition(self, ctx: TransitionContext) -> None:
        raise NotImplementedError


class ProtectTerminalStates(Rule):
    """A finished run stays finished; only a forced proposal (an operator) can change it."""

    FROM_STATES = frozenset(TERMINAL_STATE_TYPES)

    def before_transition(self, ctx: TransitionContext) -> None:
        assert ctx.initial is not None
        ctx.abort(
            f"The run is already {ctx.initial.name} ({ctx.initial.type.value}); "
            "a finished run cannot change state."
        )


class PreventDuplicateClaims(Rule):
    """Of clients racing to claim or start a run, one wins: a run already Pending (claimed)
    or Running cannot be made Pending again, and a Running run cannot start again. The
    losers are aborted; a retried request keeps its transition id and is not a loser."""

    FROM_STATES = frozenset({StateType.PENDING, StateType.RUNNING, StateType.CANCELLING})
    TO_STATES = frozenset({StateType.PENDING, StateType.RUNNING})

    def applies(self, ctx: TransitionContext) -> bool:
        if not super().applies(ctx):
            return False
        # Pending -> Running is how a claimed run starts.
        return not (
            ctx.initial_type is StateType.PENDING and ctx.proposed.type is StateType.RUNNING
        )

    def before_transition(self, ctx: TransitionContext) -> None:
        assert ctx.initial is not None
        ctx.abort(
            f"The run is already {ctx.initial.name} ({ctx.initial.type.value}); "
            f"another client claimed or started it, so it cannot become {ctx.proposed.type.value}."
        )


class WaitForScheduledTime(Rule):
    """A scheduled run cannot start before its scheduled time."""

    FROM_STATES = frozenset({StateType.SCHEDULED})
    TO_STATES = frozenset({StateType.PENDING, StateType.RUNNING})

    def before_transition(self, ctx: TransitionContext) -> None:
        assert ctx.initial is not None
        when = ctx.initial.state_details.scheduled_time
        if when is not None and when - SCHEDULE_TOLERANCE > ctx.now:
            delay = (when - ctx.now).total_seconds()
            ctx.wait(delay, f"The run is scheduled for {when.isoformat()}; wait {delay:.1f}s.")


class FinishCancellation(Rule):
    """A run being cancelled ends Cancelled, whatever it proposes next (Completed,
    Failed, a retry): the engine learns it from the answer and stops there."""

    FROM_STATES = frozenset({StateType.CANCELLING})
    TO_STATES = frozenset(StateType) - {
        StateType.CANCELLING,
        StateType.CANCELLED,
        StateType.CRASHED,
    }

    def before_transition(self, ctx: TransitionContext) -> None:
        ctx.reject(
            Cancelled(message=ctx.initial.message if ctx.initial else None),
            f"The run is being cancelled; it ends Cancelled, not {ctx.proposed.name}.",
        )


class RetryFailedFlowRuns(Rule):
    """A failed run with retries left is scheduled again after its retry delay."""

    FROM_STATES = frozenset({StateType.RUNNING})
    TO_STATES = frozenset({StateType.FAILED})

    def before_transition(self, ctx: TransitionContext) -> None:
        run = ctx.run
        if run.run_count > run.retries:
            return
        when = ctx.now + datetime.timedelta(seconds=run.retry_delay_seconds)
        retry = AwaitingRetry(scheduled_time=when, message=ctx.proposed.message)
        ctx.reject(retry, f"Retry {run.run_count} of {run.retries} at {when.isoformat()}.")


# What a paused run can be resumed to: Running (its process waits), Scheduled (suspended).
RESUMED_TYPES = frozenset({StateType.PENDING, StateType.RUNNING, StateType.SCHEDULED})


class ResumeOnlyByRequest(Rule):
    """A paused run waits for a person (or a program) to resume it: it continues only
    through a resume, which checks its input. Anything else proposing to start it again
    (its own process, a worker, a stray client) is refused; it can still fail, crash or be
    cancelled."""

    FROM_STATES = frozenset({StateType.PAUSED})
    TO_STATES = RESUMED_TYPES

    def applies(self, ctx: TransitionContext) -> bool:
        return super().applies(ctx) and not ctx.resuming

    def before_transition(self, ctx: TransitionContext) -> None:
        ctx.abort(
            "The run is paused; only a resume (POST /api/flow_runs/{id}/resume, "
            "`conveyor flow-run resume`) can continue it."
        )


class RefuseExpiredResume(Rule):
    """A pause past its deadline cannot be resumed: the run fails instead (the engine
    waiting on it, or the ``pauses`` service for a suspended run, makes it Failed)."""

    FROM_STATES = frozenset({StateType.PAUSED})
    TO_STATES = RESUMED_TYPES

    def before_transition(self, ctx: TransitionContext) -> None:
        assert ctx.initial is not None
        deadline = ctx.initial.state_details.pause_timeout
        if deadline is not None and deadline <= ctx.now:
            ctx.abort(
                f"The pause expired at {deadline.isoformat()}; an expired pause cannot be "
                "resumed, and the run fails."
            )
