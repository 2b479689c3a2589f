"""Retrying a finished flow run by request: it is scheduled again, for any worker to run.

Only a run made from a deployment can be retried this way: a worker starts it again from
the deployment's entrypoint. A run started by ``python my_flow.py`` has nobody to start
it again, and the answer says so. Finished states are protected by the rules, so this is
an operator's forced transition, like the rescheduler's, and only from a finished state
to Scheduled.
"""

from __future__ import annotations

import datetime
import uuid

from sqlalchemy.orm import Session

from conveyor.schemas.api import OrchestrationResult, OrchestrationStatus
from conveyor.schemas.states import TERMINAL_STATE_TYPES, Scheduled, StateType
from conveyor.server.models import flow_runs
from conveyor.server.orchestration.policy import FlowRunNotFound, set_flow_run_state

RETRY_STATE_NAME = "AwaitingRetry"


def retry_flow_run(
    session: Session, flow_run_id: uuid.UUID, *, now: datetime.datetime | None = None
) -> OrchestrationResult:
    """Schedule a finished deployment run again, due now; ABORT, with the reason in
    words, for a run that has not finished or was not made from a deployment."""
    run = flow_runs.read_flow_run(session, flow_run_id, for_update=True)
    if run is None:
        raise FlowRunNotFound(flow_run_id)
    current = flow_runs.current_state(session, run)
    finished = run.state_type is not None and StateType(run.state_type) in TERMINAL_STATE_TYPES
    if not finished:
        return OrchestrationResult(
            status=OrchestrationStatus.ABORT,
            state=current,
            reason=f"Run {run.name!r} is {run.state_name or 'new'}: only a finished run "
            "can be retried.",
        )
    if run.deployment_id is None:
        return OrchestrationResult(
            status=OrchestrationStatus.ABORT,
            state=current,
            reason=f"Run {run.name!r} was not made from a deployment, so no worker can "
            "start it again; run its flow again instead.",
        )
    now = now or datetime.datetime.now(datetime.timezone.utc)
    state = Scheduled(now, name=RETRY_STATE_NAME, message="Retried by request.")
    state.state_details.transition_id = uuid.uuid4()
    result = set_flow_run_state(session, flow_run_id, state, force=True, now=now)
    if result.status is OrchestrationStatus.ACCEPT:
        run.worker_id = None
        run.last_heartbeat = None
        run.end_time = None
        session.flush()
    return result
