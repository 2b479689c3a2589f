"""Reaper: a run whose executor stopped heartbeating is Crashed, never left Running.

Runs Pending, Running, or waiting in their process to retry (AwaitingRetry) are watched.
A worker heartbeats each run it launched (every 10 s) and a flow process running against
a server heartbeats its top-level run (every ``HEARTBEAT_SECONDS`` of the engine). When
the worker's machine dies, or the worker and its run's process are killed, the heartbeats
stop; ``after_seconds`` later (several missed beats) the run is proposed Crashed through
the rules, saying since when nothing was heard. Only runs expected to heartbeat are
reaped: claimed by a worker, or whose process has sent at least one; a short local run
that never heartbeated has no reaper to fear. The rescheduler then runs crashed
deployment runs again.

A subflow run in its parent's process has no heartbeat of its own: when the parent
Crashes (reaped here, or reported by its worker), the child is Crashed with it, not left
Running forever.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy.orm import Session

from conveyor.schemas.states import Crashed, State
from conveyor.server.database import orm
from conveyor.server.database.engine import Database
from conveyor.server.models import run_sweeps
from conveyor.server.services.base import LoopService
from conveyor.server.services.proposals import propose_to_each
from conveyor.settings import DEFAULT_SERVICE_INTERVALS, ServicesSettings

DEFAULT_AFTER_SECONDS = ServicesSettings.reaper_after_seconds


class Reaper(LoopService):
    name = "reaper"
    interval = DEFAULT_SERVICE_INTERVALS[name]

    def __init__(
        self, database: Database, *, after_seconds: float = DEFAULT_AFTER_SECONDS, **options: Any
    ) -> None:
        super().__init__(database, **options)
        self.after = datetime.timedelta(seconds=after_seconds)

    async def run_once(self, now: datetime.datetime) -> int:
        reaped = await self.database.write(_reap, now - self.after, now, self.batch_size)
        return reaped + await self.database.write(_crash_stranded_children, now, self.batch_size)


def _reap(session: Session, before: datetime.datetime, now: datetime.datetime, limit: int) -> int:
    def crashed(run: orm.FlowRun) -> State | None:
        if not run_sweeps.is_silent_since(session, run.id, before):
            return None  # it heartbeated, finished or moved since it was found
        heard = max(t for t in (run.last_heartbeat, run.state_timestamp) if t is not None)
        silent = (now - heard).total_seconds()
        who = "its worker" if run.worker_id is not None else "its process"
        return Crashed(
            message=f"No heartbeat from {who} since {heard.isoformat()} ({silent:.0f} s): "
            "whatever ran it stopped without reporting a final state."
        )

    return propose_to_each(session, run_sweeps.silent_run_ids(session, before, limit), crashed, now)


def _crash_stranded_children(session: Session, now: datetime.datetime, limit: int) -> int:
    def crashed(run: orm.FlowRun) -> State | None:
        if not run_sweeps.is_stranded_child(session, run.id):
            return None
        return Crashed(
            message=f"Its parent flow run {run.parent_flow_run_id} crashed, and this subflow "
            "ran in the same process."
        )

    return propose_to_each(session, run_sweeps.stranded_child_ids(session, limit), crashed, now)
