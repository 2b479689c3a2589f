"""Finding the flow runs a background service must act on.

Each query is bounded by ``limit`` and starts from the ``(state_type, created)`` index, so
it reads the few runs in one state (Scheduled, Cancelling, not yet finished), never the
whole history of finished runs. The ids are read without locks: the service then locks
each run and checks again before proposing anything, since a run may move meanwhile.
"""

from __future__ import annotations

import datetime
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from conveyor.schemas.states import StateType
from conveyor.server.database import orm

LATE_STATE_NAME = "Late"

# Runs that have not finished and are not already being cancelled.
CANCELLABLE = (StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED)
CANCELLED_OR_CANCELLING = (StateType.CANCELLED, StateType.CANCELLING)


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
