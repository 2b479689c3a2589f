"""The next scheduled runs of deployments, as their page lists them.

Each deployment's next runs are read along the ``(deployment_id, state_type,
expected_start_time)`` index, a few per deployment: the cost follows the page, never the
history.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.schemas.states import StateType
from conveyor.server.database import orm


def next_runs(
    session: Session, deployment_ids: Sequence[uuid.UUID], now: datetime.datetime, each: int
) -> dict[uuid.UUID, list[orm.FlowRun]]:
    """Up to ``each`` Scheduled runs of every deployment due from ``now``, soonest first."""
    run = orm.FlowRun
    found: dict[uuid.UUID, list[orm.FlowRun]] = {}
    for deployment_id in deployment_ids:
        query = (
            select(run)
            .where(
                run.deployment_id == deployment_id,
                run.state_type == StateType.SCHEDULED.value,
                run.expected_start_time >= now,
            )
            .order_by(run.expected_start_time, run.id)
            .limit(each)
        )
        found[deployment_id] = list(session.execute(query).scalars())
    return found
