"""Pauses: a paused run whose pause expired fails, with a message saying so.

A pause (``pause_flow_run``) or suspension (``suspend_flow_run``) stores its deadline in
the Paused state's details (``pause_timeout``). The process of a pause fails its own run
when the deadline passes; a suspended run has no process left, so this service does it,
and it also ends a pause whose process never did (it died, or its clock disagrees). Each
pass reads one batch of paused runs, by id from where the last pass stopped (a deadline
inside JSON details is not indexed on both databases alike, and paused runs are few), and
proposes Failed, through the rules, for each one past its deadline.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy.orm import Session

from conveyor.schemas.api import OrchestrationStatus
from conveyor.schemas.states import Failed, StateType
from conveyor.server.database.engine import Database
from conveyor.server.models import flow_runs, run_sweeps
from conveyor.server.orchestration.policy import set_flow_run_state
from conveyor.server.services.base import LoopService
from conveyor.settings import DEFAULT_SERVICE_INTERVALS


class PauseExpiry(LoopService):
    name = "pauses"
    interval = DEFAULT_SERVICE_INTERVALS[name]

    def __init__(self, database: Database, **options: Any) -> None:
        super().__init__(database, **options)
        self._after: uuid.UUID | None = None

    async def run_once(self, now: datetime.datetime) -> int:
        failed, self._after = await self.database.write(
            _fail_expired, self._after, now, self.batch_size
        )
        return failed


def _fail_expired(
    session: Session, after: uuid.UUID | None, now: datetime.datetime, limit: int
) -> tuple[int, uuid.UUID | None]:
    """Fail the expired pauses of one batch; the id to go on from (None: start over)."""
    page = run_sweeps.paused_runs(session, after, limit)
    failed = 0
    for run_id, deadline in page:
        if deadline is None or deadline > now:
            continue
        run = flow_runs.read_flow_run(session, run_id, for_update=True)
        if run is None or run.state_type != StateType.PAUSED.value:
            continue  # resumed, cancelled or failed since it was read
        current = flow_runs.current_state(session, run)
        if current is None or current.state_details.pause_timeout != deadline:
            continue  # paused again since, with another deadline
        how = "suspended" if current.state_details.pause_reschedule else "paused"
        key = current.state_details.pause_key
        state = Failed(
            message=f"The run was {how} (pause {key!r}) and not resumed before its pause "
            f"expired at {deadline.isoformat()}."
        )
        state.state_details.transition_id = uuid.uuid4()
        result = set_flow_run_state(session, run_id, state, now=now)
        failed += result.status is OrchestrationStatus.ACCEPT
    next_after = page[-1][0] if len(page) >= limit else None
    return failed, next_after
