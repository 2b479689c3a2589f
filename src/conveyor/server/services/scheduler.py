"""Scheduler: keeps each active deployment's next scheduled runs made ahead of time.

For every deployment that is not paused and has active schedules, the runs of every
scheduled time in the next hour exist, but at least 3 and at most 100 (``Lookahead``):
Scheduled at their times, ``auto_scheduled``, with the deployment's parameters overlaid by
the schedule's. Each (deployment, time) is made at most once, however many schedulers run
and however often (``models/scheduling.py``).

A pass looks only at deployments with too few future runs (one indexed query when there are
none), ``batch_size`` deployments per short transaction, until none are left; each one's
new runs start after its latest future run, so a pass adds only what time used up.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from conveyor.server.database.engine import Database
from conveyor.server.models.scheduling import Lookahead, schedule_runs
from conveyor.server.services.base import LoopService
from conveyor.settings import DEFAULT_SERVICE_INTERVALS


class Scheduler(LoopService):
    name = "scheduler"
    interval = DEFAULT_SERVICE_INTERVALS[name]

    def __init__(
        self, database: Database, *, lookahead: Lookahead | None = None, **options: Any
    ) -> None:
        super().__init__(database, **options)
        self.lookahead = lookahead or Lookahead()

    async def run_once(self, now: datetime.datetime) -> int:
        made, after = 0, None
        while True:
            page: tuple[int, uuid.UUID | None] = await self.database.write(
                schedule_runs, now, self.lookahead, after, self.batch_size
            )
            made += page[0]
            if page[1] is None:
                return made
            after = page[1]
