"""Deleting what is older than the retention age: finished flow runs and orphan logs.

A flow run's states, task runs, logs and artifacts go with it through their foreign keys'
``ON DELETE CASCADE`` (SQLite enforces them: the engine turns ``foreign_keys`` on), and
its child runs keep living with ``parent_flow_run_id`` set to NULL.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session

from conveyor.schemas.states import TERMINAL_STATE_TYPES
from conveyor.server.database import orm

_TERMINAL = sorted(s.value for s in TERMINAL_STATE_TYPES)


def finished_run_ids(session: Session, before: datetime.datetime, limit: int) -> list[uuid.UUID]:
    """Runs that finished before ``before``.

    ``created < before`` is implied (a run ends after it is created) and lets the query
    range over the ``(state_type, created)`` index instead of every finished run."""
    run = orm.FlowRun
    query = (
        select(run.id)
        .where(run.state_type.in_(_TERMINAL), run.created < before, run.end_time < before)
        .limit(limit)
    )
    return list(session.execute(query).scalars())


def delete_flow_runs(session: Session, ids: Sequence[uuid.UUID]) -> int:
    """Delete the runs and, by cascade, everything recorded for them; how many went."""
    if not ids:
        return 0
    statement = delete(orm.FlowRun).where(orm.FlowRun.id.in_(ids))
    return _rowcount(session, statement)


def delete_orphan_logs(session: Session, before: datetime.datetime, limit: int) -> int:
    """Up to ``limit`` logs of no flow run, written before ``before``."""
    log = orm.Log
    oldest = select(log.id).where(log.flow_run_id.is_(None), log.timestamp < before).limit(limit)
    return _rowcount(session, delete(log).where(log.id.in_(oldest)))


def _rowcount(session: Session, statement: Any) -> int:
    # The deleted rows are not in this session: nothing to synchronise, so skip the work.
    options = {"synchronize_session": False}
    result = cast(CursorResult[Any], session.execute(statement, execution_options=options))
    return int(result.rowcount)
