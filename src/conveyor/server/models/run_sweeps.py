"""Finding the flow runs a background service must act on.

Each query is bounded by ``limit`` and starts from the ``(state_type, created)`` index, so
it reads the few runs in one state (Scheduled, Cancelling, not yet finished), never the
whole history of finished runs. The ids are read without locks: the service then locks
each run and checks again before proposing anything, since a run may move meanwhile.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from conveyor.schemas.states import StateType
from conveyor.server.database import orm

LATE_STATE_NAME = "Late"
RESCHEDULED_STATE_NAME = "Rescheduled"
AWAITING_RETRY_STATE_NAME = "AwaitingRetry"
SUSPENDED_STATE_NAME = "Suspended"

# Runs that have not finished and are not already being cancelled.
CANCELLABLE = (StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED)
CANCELLED_OR_CANCELLING = (StateType.CANCELLED, StateType.CANCELLING)
# Runs something is executing, which the executor says is alive by heartbeats.
EXECUTING = (StateType.PENDING.value, StateType.RUNNING.value)


def late_run_ids(session: Session, before: datetime.datetime, limit: int) -> list[uuid.UUID]:
    """Scheduled runs, not yet marked Late, that were due before ``before``."""
    run = orm.FlowRun
    query = (
        select(run.id)
        .where(
            run.state_type == StateType.SCHEDULED.value,
            run.state_name != LATE_STATE_NAME,
            run.expected_start_time < before,
        )
        .order_by(run.expected_start_time)
        .limit(limit)
    )
    return list(session.execute(query).scalars())


def is_late(run: orm.FlowRun, before: datetime.datetime) -> bool:
    """``late_run_ids``'s condition, for one run read under its lock."""
    return (
        run.state_type == StateType.SCHEDULED.value
        and run.state_name != LATE_STATE_NAME
        and run.expected_start_time is not None
        and run.expected_start_time < before
    )


def cancelling_since_ids(
    session: Session, before: datetime.datetime, limit: int
) -> list[uuid.UUID]:
    """Runs that entered Cancelling before ``before`` and are still there."""
    run = orm.FlowRun
    query = (
        select(run.id)
        .where(run.state_type == StateType.CANCELLING.value, run.state_timestamp < before)
        .limit(limit)
    )
    return list(session.execute(query).scalars())


def is_cancelling_since(run: orm.FlowRun, before: datetime.datetime) -> bool:
    return (
        run.state_type == StateType.CANCELLING.value
        and run.state_timestamp is not None
        and run.state_timestamp < before
    )


def orphaned_child_ids(session: Session, limit: int) -> list[uuid.UUID]:
    """Unfinished child runs (not already cancelling) of a Cancelled or Cancelling parent.

    Starts from the children, which are few (unfinished runs), rather than from the
    parents, which include every run ever cancelled."""
    child, parent = orm.FlowRun, aliased(orm.FlowRun)
    query = (
        select(child.id)
        .join(parent, parent.id == child.parent_flow_run_id)
        .where(
            child.state_type.in_([s.value for s in CANCELLABLE]),
            parent.state_type.in_([s.value for s in CANCELLED_OR_CANCELLING]),
        )
        .limit(limit)
    )
    return list(session.execute(query).scalars())


def parent_is_cancelled(session: Session, run: orm.FlowRun) -> bool:
    """``orphaned_child_ids``'s condition, for one run read under its lock."""
    if run.state_type not in {s.value for s in CANCELLABLE} or run.parent_flow_run_id is None:
        return False
    parent_state = session.execute(
        select(orm.FlowRun.state_type).where(orm.FlowRun.id == run.parent_flow_run_id)
    ).scalar_one_or_none()
    return parent_state in {s.value for s in CANCELLED_OR_CANCELLING}


def _stranded_child() -> Any:
    """A subflow run executing in its parent's process (no worker, no heartbeat of its
    own) whose parent Crashed: the process that ran both is gone, so nothing will ever
    report the child's end."""
    child, parent = orm.FlowRun, aliased(orm.FlowRun)
    return and_(
        child.state_type.in_(EXECUTING),
        child.worker_id.is_(None),
        child.last_heartbeat.is_(None),
        select(parent.id)
        .where(parent.id == child.parent_flow_run_id, parent.state_type == StateType.CRASHED)
        .exists(),
    )


def stranded_child_ids(session: Session, limit: int) -> list[uuid.UUID]:
    """Pending or Running subflow runs of a Crashed parent run in the same process."""
    query = select(orm.FlowRun.id).where(_stranded_child()).limit(limit)
    return list(session.execute(query).scalars())


def is_stranded_child(session: Session, run_id: uuid.UUID) -> bool:
    """``stranded_child_ids``'s condition, for one run read under its lock."""
    query = select(orm.FlowRun.id).where(orm.FlowRun.id == run_id, _stranded_child())
    return session.execute(query).first() is not None


def _silent_since(before: datetime.datetime) -> Any:
    """Runs expected to heartbeat (claimed by a worker, or whose process has sent one) that
    have neither heartbeated nor changed state since ``before``: a state change is a sign
    of life too, e.g. a run starting again after a long retry delay."""
    run = orm.FlowRun
    return and_(
        or_(
            run.state_type.in_(EXECUTING),
            # Waiting in its process to retry: the process heartbeats meanwhile, and no
            # claim would take the run from it, so a dead process would strand it.
            and_(
                run.state_type == StateType.SCHEDULED.value,
                run.state_name == AWAITING_RETRY_STATE_NAME,
            ),
            # Paused: its process waits for the resume and heartbeats meanwhile. Not a
            # suspended run, whose process exited on purpose (the pauses service ends it).
            and_(
                run.state_type == StateType.PAUSED.value,
                run.state_name != SUSPENDED_STATE_NAME,
            ),
        ),
        or_(run.worker_id.is_not(None), run.last_heartbeat.is_not(None)),
        or_(run.last_heartbeat.is_(None), run.last_heartbeat < before),
        run.state_timestamp < before,
    )


def silent_run_ids(session: Session, before: datetime.datetime, limit: int) -> list[uuid.UUID]:
    """Pending, Running, AwaitingRetry or Paused (not Suspended) runs whose heartbeats
    stopped before ``before``."""
    query = select(orm.FlowRun.id).where(_silent_since(before)).limit(limit)
    return list(session.execute(query).scalars())


def is_silent_since(session: Session, run_id: uuid.UUID, before: datetime.datetime) -> bool:
    """``silent_run_ids``'s condition, for one run read under its lock."""
    query = select(orm.FlowRun.id).where(orm.FlowRun.id == run_id, _silent_since(before))
    return session.execute(query).first() is not None


def _rescheduled_count() -> Any:
    state = orm.FlowRunState
    return (
        select(func.count())
        .where(state.flow_run_id == orm.FlowRun.id, state.name == RESCHEDULED_STATE_NAME)
        .scalar_subquery()
    )


def reschedulable_ids(session: Session, max_attempts: int, limit: int) -> list[uuid.UUID]:
    """Crashed runs of deployments rescheduled fewer than ``max_attempts`` times."""
    run = orm.FlowRun
    query = (
        select(run.id)
        .where(
            run.state_type == StateType.CRASHED.value,
            run.deployment_id.is_not(None),
            _rescheduled_count() < max_attempts,
        )
        .order_by(run.state_timestamp)
        .limit(limit)
    )
    return list(session.execute(query).scalars())


def rescheduled_count(session: Session, run_id: uuid.UUID) -> int:
    state = orm.FlowRunState
    query = select(func.count()).where(
        state.flow_run_id == run_id, state.name == RESCHEDULED_STATE_NAME
    )
    return int(session.execute(query).scalar_one())


def paused_runs(
    session: Session, after: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, datetime.datetime | None]]:
    """Up to ``limit`` Paused or Suspended runs with ids above ``after``, by id, each with
    its pause's deadline. The deadline lives in the state's details (JSON), so it is read
    here and compared in Python, the same way on both databases; a caller pages through
    all paused runs (they are few: runs waiting for people) a batch per pass."""
    from conveyor.server.models.flow_runs import state_from_row

    run, state = orm.FlowRun, orm.FlowRunState
    query = (
        select(run.id, state)
        .join(state, state.id == run.state_id)
        .where(run.state_type == StateType.PAUSED.value)
        .order_by(run.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(run.id > after)
    return [
        (run_id, state_from_row(row).state_details.pause_timeout)
        for run_id, row in session.execute(query).all()
    ]
