"""Retention: delete finished flow runs older than the retention age, and orphan logs.

Off unless ``CONVEYOR_SERVER_RETENTION_DAYS`` is set. A run goes once it finished (in a
terminal state) more than the age ago, with its states, task runs, logs and artifacts;
so do logs of no flow run written that long ago. Each pass deletes at most
``batch_size`` runs and ten times as many orphan logs, in two short transactions.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy.orm import Session

from conveyor.server.database.engine import Database
from conveyor.server.models import retention
from conveyor.server.services.base import LoopService
from conveyor.settings import DEFAULT_SERVICE_INTERVALS

LOGS_PER_RUN = 10


class Retention(LoopService):
    name = "retention"
    interval = DEFAULT_SERVICE_INTERVALS[name]

    def __init__(self, database: Database, *, retention_days: float, **options: Any) -> None:
        super().__init__(database, **options)
        self.age = datetime.timedelta(days=retention_days)

    async def run_once(self, now: datetime.datetime) -> int:
        before = now - self.age
        runs = await self.database.write(_delete_finished_runs, before, self.batch_size)
        logs = await self.database.write(
            retention.delete_orphan_logs, before, self.batch_size * LOGS_PER_RUN
        )
        return runs + logs


def _delete_finished_runs(session: Session, before: datetime.datetime, limit: int) -> int:
    return retention.delete_flow_runs(session, retention.finished_run_ids(session, before, limit))
