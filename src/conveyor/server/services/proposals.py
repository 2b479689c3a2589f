"""The step every sweeping service ends with: propose a state to each run it found.

The ids were read without locks, so each run is locked and asked again whether it still
qualifies (it may have moved since) before anything is proposed through the rules.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable, Iterable

from sqlalchemy.orm import Session

from conveyor.schemas.api import OrchestrationStatus
from conveyor.schemas.states import State
from conveyor.server.database import orm
from conveyor.server.models import flow_runs
from conveyor.server.orchestration.policy import set_flow_run_state


def propose_to_each(
    session: Session,
    run_ids: Iterable[uuid.UUID],
    state_for: Callable[[orm.FlowRun], State | None],
    now: datetime.datetime,
) -> int:
    """Propose ``state_for(run)`` to each run, read under its lock; ``state_for`` answers
    None for a run that no longer qualifies. Returns how many the rules accepted."""
    accepted = 0
    for run_id in run_ids:
        run = flow_runs.read_flow_run(session, run_id, for_update=True)
        state = None if run is None else state_for(run)
        if state is None:
            continue
        state.state_details.transition_id = uuid.uuid4()
        result = set_flow_run_state(session, run_id, state, now=now)
        accepted += result.status is OrchestrationStatus.ACCEPT
    return accepted
