"""The dashboard's queries on each backend: runs in the right buckets, caps, lists."""

from __future__ import annotations

import datetime
import uuid

import pytest
from sqlalchemy.orm import Session

from conveyor.schemas.states import StateType
from conveyor.server.database import orm
from conveyor.server.database.engine import Database
from conveyor.server.models import dashboard

pytestmark = pytest.mark.anyio

T0 = datetime.datetime(2025, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
EDGES = [T0 + datetime.timedelta(hours=h) for h in range(4)]  # three one-hour buckets


def _add_runs(session: Session, runs: list[tuple[float, str]]) -> None:
    flow = orm.Flow(id=uuid.uuid4(), name="etl", tags=[])
    session.add(flow)
    session.flush()
    for i, (hours, state) in enumerate(runs):
        created = T0 + datetime.timedelta(hours=hours)
        session.add(
            orm.FlowRun(
                id=uuid.uuid4(),
                flow_id=flow.id,
                name=f"run-{i}",
                state_type=state,
                state_name=state.title(),
                created=created,
                expected_start_time=created,
            )
        )


async def test_runs_are_counted_in_their_bucket_by_state(database: Database) -> None:
    runs = [
        (-0.5, "COMPLETED"),  # before the range
        (0.0, "COMPLETED"),  # on the first edge: in the first bucket
        (0.999, "FAILED"),
        (1.0, "COMPLETED"),  # on an inner edge: in the later bucket
        (2.5, "COMPLETED"),
        (2.75, "RUNNING"),
        (3.0, "COMPLETED"),  # on the last edge: after the range
    ]
    await database.write(_add_runs, runs)
    counts = await database.read(dashboard.state_counts, EDGES, 100)
    assert counts.counts == [
        {"COMPLETED": 1, "FAILED": 1},
        {"COMPLETED": 1},
        {"COMPLETED": 1, "RUNNING": 1},
    ]
    assert counts.capped == []


async def test_a_capped_state_counts_its_newest_runs_and_says_so(database: Database) -> None:
    await database.write(_add_runs, [(h / 10, "COMPLETED") for h in range(30)])
    counts = await database.read(dashboard.state_counts, EDGES, 15)
    assert counts.counts == [{}, {"COMPLETED": 5}, {"COMPLETED": 10}]
    assert counts.capped == ["COMPLETED"]


async def test_recent_failures_newest_first_across_states(database: Database) -> None:
    runs = [(0.1, "FAILED"), (0.2, "CRASHED"), (0.3, "COMPLETED"), (0.4, "FAILED")]
    await database.write(_add_runs, runs)
    states = (StateType.FAILED, StateType.CRASHED)
    found = await database.read(dashboard.recent_runs_in, states, T0, 2)
    assert [(run.name, flow) for run, flow in found] == [("run-3", "etl"), ("run-1", "etl")]
