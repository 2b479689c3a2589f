"""CancellationCleanup: cancellations always end, and reach a cancelled run's children.

* A run still Cancelling ``timeout`` after it got there is made Cancelled: whatever ran
  it (an engine, a worker's process) died or never heard, and would otherwise leave it
  Cancelling forever.
* The unfinished child runs of a Cancelled or Cancelling parent are cancelled through
  ``cancel_flow_run``: Cancelled if they had not started, else Cancelling. Children that
  run in their parent's process stop with it anyway; this reaches the ones that do not
  (started from deployments, or whose parent's process is gone). Grandchildren follow on
  the next pass.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy.orm import Session

from conveyor.schemas.api import OrchestrationStatus
from conveyor.schemas.states import Cancelled, State
from conveyor.server.database import orm
from conveyor.server.database.engine import Database
from conveyor.server.models import flow_runs, run_sweeps
from conveyor.server.orchestration.policy import cancel_flow_run
from conveyor.server.services.base import LoopService
from conveyor.server.services.proposals import propose_to_each
from conveyor.settings import DEFAULT_SERVICE_INTERVALS, ServicesSettings

DEFAULT_TIMEOUT_SECONDS = ServicesSettings.cancelling_timeout_seconds


class CancellationCleanup(LoopService):
    name = "cancellation_cleanup"
    interval = DEFAULT_SERVICE_INTERVALS[name]

    def __init__(
        self,
        database: Database,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        **options: Any,
    ) -> None:
        super().__init__(database, **options)
        self.timeout_seconds = timeout_seconds

    async def run_once(self, now: datetime.datetime) -> int:
        before = now - datetime.timedelta(seconds=self.timeout_seconds)
        finished = await self.database.write(
            _finish_stuck, before, now, self.timeout_seconds, self.batch_size
        )
        cascaded = await self.database.write(_cancel_children, now, self.batch_size)
        return finished + cascaded


def _finish_stuck(
    session: Session,
    before: datetime.datetime,
    now: datetime.datetime,
    timeout_seconds: float,
    limit: int,
) -> int:
    def cancelled(run: orm.FlowRun) -> State | None:
        if not run_sweeps.is_cancelling_since(run, before):
            return None
        return Cancelled(
            message=f"Still cancelling after {timeout_seconds:g} s: nothing reported the run "
            "stopped, so the server ended the cancellation."
        )

    found = run_sweeps.cancelling_since_ids(session, before, limit)
    return propose_to_each(session, found, cancelled, now)


def _cancel_children(session: Session, now: datetime.datetime, limit: int) -> int:
    cancelled = 0
    for run_id in run_sweeps.orphaned_child_ids(session, limit):
        run = flow_runs.read_flow_run(session, run_id, for_update=True)
        if run is None or not run_sweeps.parent_is_cancelled(session, run):
            continue
        result = cancel_flow_run(
            session, run_id, now=now, message="Cancelled with its parent flow run."
        )
        cancelled += result.status is OrchestrationStatus.ACCEPT
    return cancelled
