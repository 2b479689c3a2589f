"""Rescheduler: a crashed deployment run is scheduled again, a bounded number of times.

A run that crashed (its process died, or the reaper found its heartbeats stopped) did not
fail on its own account, so it deserves another go: it becomes Scheduled, named
``Rescheduled``, ``delay_seconds`` later, with its worker cleared so any worker of its
pool may claim it. The attempts are counted in the run's history (its ``Rescheduled``
states), at most ``max_attempts``; after that the run stays Crashed. Only runs of
deployments: a run started by ``python my_flow.py`` has nobody to start it again.

Crashed is a final state, which the rules protect from any change; this service forces
the transition, the one place the server overrides that protection by itself, as an
operator would, and only from Crashed to Scheduled.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy.orm import Session

from conveyor.schemas.api import OrchestrationStatus
from conveyor.schemas.states import Scheduled, StateType
from conveyor.server.database.engine import Database
from conveyor.server.models import flow_runs, run_sweeps
from conveyor.server.orchestration.policy import set_flow_run_state
from conveyor.server.services.base import LoopService
from conveyor.settings import DEFAULT_SERVICE_INTERVALS, ServicesSettings

DEFAULT_MAX_ATTEMPTS = ServicesSettings.rescheduler_max_attempts
DEFAULT_DELAY_SECONDS = ServicesSettings.rescheduler_delay_seconds


class Rescheduler(LoopService):
    name = "rescheduler"
    interval = DEFAULT_SERVICE_INTERVALS[name]

    def __init__(
        self,
        database: Database,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        delay_seconds: float = DEFAULT_DELAY_SECONDS,
        **options: Any,
    ) -> None:
        super().__init__(database, **options)
        self.max_attempts = max_attempts
        self.delay = datetime.timedelta(seconds=delay_seconds)

    async def run_once(self, now: datetime.datetime) -> int:
        return await self.database.write(
            _reschedule, now, now + self.delay, self.max_attempts, self.batch_size
        )


def _reschedule(
    session: Session,
    now: datetime.datetime,
    when: datetime.datetime,
    max_attempts: int,
    limit: int,
) -> int:
    rescheduled = 0
    for run_id in run_sweeps.reschedulable_ids(session, max_attempts, limit):
        run = flow_runs.read_flow_run(session, run_id, for_update=True)
        if run is None or run.state_type != StateType.CRASHED.value:
            continue  # rescheduled or removed since it was found
        attempt = run_sweeps.rescheduled_count(session, run_id) + 1
        if run.deployment_id is None or attempt > max_attempts:
            continue
        state = Scheduled(
            when,
            name=run_sweeps.RESCHEDULED_STATE_NAME,
            message=f"Crashed; scheduled again (attempt {attempt} of {max_attempts}).",
        )
        state.state_details.transition_id = uuid.uuid4()
        result = set_flow_run_state(session, run_id, state, force=True, now=now)
        if result.status is OrchestrationStatus.ACCEPT:
            run.worker_id = None
            run.last_heartbeat = None
            run.end_time = None  # it has not ended after all
            session.flush()
            rescheduled += 1
    return rescheduled
