"""LateRuns: a scheduled run that has not started well after its time is marked Late.

Late is still a SCHEDULED state (it keeps the scheduled time), so a worker that claims
the run afterwards starts it as usual; the name tells people that nobody picked it up
in time (no worker polling its pool, or all busy).
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy.orm import Session

from conveyor.schemas.states import Late, State
from conveyor.server.database import orm
from conveyor.server.database.engine import Database
from conveyor.server.models import flow_runs, run_sweeps
from conveyor.server.services.base import LoopService
from conveyor.server.services.proposals import propose_to_each
from conveyor.settings import DEFAULT_SERVICE_INTERVALS, ServicesSettings

DEFAULT_AFTER_SECONDS = ServicesSettings.late_runs_after_seconds


class LateRuns(LoopService):
    name = "late_runs"
    interval = DEFAULT_SERVICE_INTERVALS[name]

    def __init__(
        self, database: Database, *, after_seconds: float = DEFAULT_AFTER_SECONDS, **options: Any
    ) -> None:
        super().__init__(database, **options)
        self.after = datetime.timedelta(seconds=after_seconds)

    async def run_once(self, now: datetime.datetime) -> int:
        return await self.database.write(_mark_late, now - self.after, now, self.batch_size)


def _mark_late(
    session: Session, before: datetime.datetime, now: datetime.datetime, limit: int
) -> int:
    def late(run: orm.FlowRun) -> State | None:
        if not run_sweeps.is_late(run, before):
            return None  # claimed, started or cancelled since it was found
        current = flow_runs.current_state(session, run)
        scheduled = current.state_details.scheduled_time if current is not None else None
        scheduled = scheduled or run.expected_start_time or before
        overdue = (now - scheduled).total_seconds()
        return Late(scheduled, message=f"Not started {overdue:.0f} s after its scheduled time.")

    return propose_to_each(session, run_sweeps.late_run_ids(session, before, limit), late, now)
