"""Scheduler: each active deployment's next runs exist, each scheduled instant at most once.

Expected instants across daylight-saving changes are written out by hand in UTC.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.server.database import orm
from conveyor.server.database.engine import Database
from conveyor.server.services.scheduler import Scheduler

pytestmark = pytest.mark.anyio

UTC = datetime.timezone.utc
MINUTE = datetime.timedelta(minutes=1)
# A 10-minute mark at least 30 minutes ahead of the real clock, so that every run the
# scheduler makes is still "future" for the real-time deletes that deployment edits do,
# even when these tests run long after the module was imported (a broad suite).
_REAL = datetime.datetime.now(UTC).replace(second=0, microsecond=0)
NOW = _REAL + (40 - _REAL.minute % 10) * MINUTE

EVERY_5_MIN = {"kind": "interval", "interval": 300}
EVERY_10_MIN = {"kind": "cron", "cron": "*/10 * * * *"}


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, minute, tzinfo=UTC)


async def deploy(client: httpx.AsyncClient, *schedules: dict[str, Any], **fields: Any) -> str:
    body = {
        "flow_name": "etl",
        "name": "nightly",
        "entrypoint": "flows.py:etl",
        "schedules": [{"schedule": s} for s in schedules],
        **fields,
    }
    response = await client.post("/deployments/", json=body)
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


def _runs(session: Session, deployment_id: str) -> list[dict[str, Any]]:
    rows = session.execute(
        select(orm.FlowRun)
        .where(orm.FlowRun.deployment_id == uuid.UUID(deployment_id))
        .order_by(orm.FlowRun.expected_start_time)
    ).scalars()
    return [
        {
            "id": row.id,
            "when": row.expected_start_time,
            "key": row.idempotency_key,
            "auto": row.auto_scheduled,
            "state": row.state_type,
            "parameters": row.parameters,
        }
        for row in rows
    ]


async def runs(database: Database, deployment_id: str) -> list[dict[str, Any]]:
    return await database.read(_runs, deployment_id)


async def times(database: Database, deployment_id: str) -> list[datetime.datetime]:
    found = [run["when"] for run in await runs(database, deployment_id)]
    assert len(found) == len(set(found)), "an instant has two runs"
    return found


async def test_makes_an_hour_of_runs_but_at_least_3_and_at_most_100(
    client: httpx.AsyncClient, database: Database
) -> None:
    every_5 = await deploy(client, EVERY_5_MIN, name="every-5")
    daily = await deploy(client, {"kind": "cron", "cron": "0 3 * * *"}, name="daily")
    every_10s = await deploy(client, {"kind": "interval", "interval": 10}, name="every-10s")
    service = Scheduler(database)

    assert await service.run_once(NOW) == 12 + 3 + 100

    assert await times(database, every_5) == [NOW + 5 * i * MINUTE for i in range(12)]
    first_3am = NOW.replace(hour=3, minute=0)
    first_3am += datetime.timedelta(days=1) if first_3am < NOW else datetime.timedelta(0)
    assert await times(database, daily) == [
        first_3am + datetime.timedelta(days=i) for i in range(3)
    ]
    made = await runs(database, every_10s)
    assert len(made) == 100 and made[-1]["when"] == NOW + 990 * datetime.timedelta(seconds=1)
    run = made[0]
    assert run["key"] == f"scheduled:{NOW.isoformat()}" and run["key"].endswith("+00:00")
    assert run["auto"] is True and run["state"] == "SCHEDULED"


async def test_passes_are_idempotent_and_incremental(
    client: httpx.AsyncClient, database: Database
) -> None:
    deployment = await deploy(client, EVERY_5_MIN)
    assert await Scheduler(database).run_once(NOW) == 12
    first = await runs(database, deployment)

    service = Scheduler(database)  # a restart: a new service, the same database
    assert await service.run_once(NOW) == 0
    assert await runs(database, deployment) == first

    # A minute on, NOW+60 is within the hour: only it is made, and only once.
    assert await service.run_once(NOW + MINUTE) == 1
    assert await service.run_once(NOW + 5 * MINUTE) == 0
    assert await times(database, deployment) == [NOW + 5 * i * MINUTE for i in range(13)]


async def test_a_redeploy_with_the_same_schedule_keeps_the_runs(
    client: httpx.AsyncClient, database: Database
) -> None:
    deployment = await deploy(client, EVERY_5_MIN, parameters={"n": 1})
    await Scheduler(database).run_once(NOW)
    first = await runs(database, deployment)

    assert await deploy(client, EVERY_5_MIN, parameters={"n": 1}) == deployment
    assert await Scheduler(database).run_once(NOW) == 0
    assert await runs(database, deployment) == first


async def test_a_schedule_edit_remakes_future_runs_without_duplicating_a_kept_one(
    client: httpx.AsyncClient, database: Database
) -> None:
    deployment = await deploy(client, EVERY_5_MIN)
    await Scheduler(database).run_once(NOW)
    # One run was cancelled: an edit deletes only the runs still Scheduled.
    cancelled = (await runs(database, deployment))[2]
    assert cancelled["when"] == NOW + 10 * MINUTE
    response = await client.post(
        f"/flow_runs/{cancelled['id']}/set_state", json={"state": {"type": "CANCELLED"}}
    )
    assert response.json()["status"] == "ACCEPT", response.text

    edit = {"schedules": [{"schedule": EVERY_10_MIN}]}
    assert (await client.patch(f"/deployments/{deployment}", json=edit)).status_code == 200
    assert await times(database, deployment) == [NOW + 10 * MINUTE]

    # The new schedule names NOW+10 too: that time keeps its one (cancelled) run.
    assert await Scheduler(database).run_once(NOW) == 5
    assert await times(database, deployment) == [NOW + 10 * i * MINUTE for i in range(6)]
    kept = [r for r in await runs(database, deployment) if r["when"] == NOW + 10 * MINUTE]
    assert [r["id"] for r in kept] == [cancelled["id"]]


async def test_a_paused_deployment_gets_no_runs(
    client: httpx.AsyncClient, database: Database
) -> None:
    paused = await deploy(client, EVERY_5_MIN, name="paused", paused=True)
    inactive = await deploy(client, name="inactive")
    await client.patch(
        f"/deployments/{inactive}", json={"schedules": [{"schedule": EVERY_5_MIN, "active": False}]}
    )
    assert await Scheduler(database).run_once(NOW) == 0
    assert await runs(database, paused) == [] and await runs(database, inactive) == []

    # Resumed, it gets its runs; paused again, the future ones go and none come back.
    await client.patch(f"/deployments/{paused}", json={"paused": False})
    assert await Scheduler(database).run_once(NOW) == 12
    await client.patch(f"/deployments/{paused}", json={"paused": True})
    assert await Scheduler(database).run_once(NOW) == 0
    assert await runs(database, paused) == []


async def test_two_schedules_on_one_instant_make_one_run_with_the_first_ones_parameters(
    client: httpx.AsyncClient, database: Database
) -> None:
    body = {
        "flow_name": "etl",
        "name": "nightly",
        "entrypoint": "flows.py:etl",
        "parameters": {"region": "eu", "size": 1, "dry": False},
        "schedules": [
            {"schedule": EVERY_10_MIN, "parameters": {"size": 10}},
            {"schedule": EVERY_5_MIN, "parameters": {"size": 5, "dry": True}},
        ],
    }
    deployment = (await client.post("/deployments/", json=body)).json()["id"]
    assert await Scheduler(database).run_once(NOW) == 12

    made = await runs(database, deployment)
    assert [r["when"] for r in made] == [NOW + 5 * i * MINUTE for i in range(12)]
    for run in made:
        on_ten = (run["when"] - NOW) % (10 * MINUTE) == datetime.timedelta(0)
        expected = {"size": 10, "dry": False} if on_ten else {"size": 5, "dry": True}
        assert run["parameters"] == {"region": "eu", **expected}


async def test_two_schedulers_at_once_make_each_run_once(
    client: httpx.AsyncClient, database: Database
) -> None:
    ids = [await deploy(client, EVERY_5_MIN, name=f"d{i}") for i in range(5)]
    one, two = Scheduler(database, batch_size=2), Scheduler(database, batch_size=3)
    made = sum(await asyncio.gather(one.run_once(NOW), two.run_once(NOW)))
    # A deployment the other scheduler holds is skipped, and made by the next pass.
    made += await one.run_once(NOW)
    assert made == 5 * 12
    for deployment in ids:
        assert await times(database, deployment) == [NOW + 5 * i * MINUTE for i in range(12)]


async def test_deployments_are_worked_through_in_batches(
    client: httpx.AsyncClient, database: Database
) -> None:
    ids = [await deploy(client, EVERY_5_MIN, name=f"d{i}") for i in range(5)]
    assert await Scheduler(database, batch_size=2).run_once(NOW) == 5 * 12
    assert all([len(await runs(database, d)) == 12 for d in ids])


# -- daylight saving time ---------------------------------------------------------------
DST_CASES = [
    pytest.param(
        # New York springs forward on 9 March 2025 at 02:00 EST to 03:00 EDT: 02:30 does
        # not exist that day and runs when the jump ends, at 03:00 EDT.
        {"kind": "cron", "cron": "30 2 * * *", "timezone": "America/New_York"},
        at(2025, 3, 8),
        [at(2025, 3, 8, 7, 30), at(2025, 3, 9, 7, 0), at(2025, 3, 10, 6, 30)],
        id="new-york-spring-cron",
    ),
    pytest.param(
        # New York falls back on 2 November 2025 at 02:00 EDT to 01:00 EST: 01:30 happens
        # twice and runs the first time (EDT), once.
        {"kind": "cron", "cron": "30 1 * * *", "timezone": "America/New_York"},
        at(2025, 11, 1),
        [at(2025, 11, 1, 5, 30), at(2025, 11, 2, 5, 30), at(2025, 11, 3, 6, 30)],
        id="new-york-fall-cron",
    ),
    pytest.param(
        # London springs forward on 30 March 2025 at 01:00 GMT to 02:00 BST.
        {"kind": "cron", "cron": "30 1 * * *", "timezone": "Europe/London"},
        at(2025, 3, 29),
        [at(2025, 3, 29, 1, 30), at(2025, 3, 30, 1, 0), at(2025, 3, 31, 0, 30)],
        id="london-spring-cron",
    ),
    pytest.param(
        # London falls back on 26 October 2025 at 02:00 BST to 01:00 GMT.
        {"kind": "cron", "cron": "30 1 * * *", "timezone": "Europe/London"},
        at(2025, 10, 25),
        [at(2025, 10, 25, 0, 30), at(2025, 10, 26, 0, 30), at(2025, 10, 27, 1, 30)],
        id="london-fall-cron",
    ),
    pytest.param(
        # A daily interval keeps its anchor's wall time (02:30), so it follows the cron rule.
        {
            "kind": "interval",
            "interval": 86400,
            "anchor_date": "2025-01-01T02:30:00-05:00",
            "timezone": "America/New_York",
        },
        at(2025, 3, 8),
        [at(2025, 3, 8, 7, 30), at(2025, 3, 9, 7, 0), at(2025, 3, 10, 6, 30)],
        id="new-york-spring-daily-interval",
    ),
    pytest.param(
        # An hourly interval is exact: on London's fall-back night 01:00 BST (00:00 UTC)
        # and 01:00 GMT (01:00 UTC) are two instants, each run once.
        {"kind": "interval", "interval": 3600, "timezone": "Europe/London"},
        at(2025, 10, 25, 22),
        [at(2025, 10, 25, 22) + datetime.timedelta(hours=i) for i in range(7)],
        id="london-fall-hourly-interval",
    ),
    pytest.param(
        # On New York's spring-forward day, the skipped 02:30 of an hourly interval is
        # exact too: 06:00, 07:00, 08:00 UTC, whatever the wall clock shows.
        {"kind": "interval", "interval": 3600, "timezone": "America/New_York"},
        at(2025, 3, 9, 5),
        [at(2025, 3, 9, 5) + datetime.timedelta(hours=i) for i in range(7)],
        id="new-york-spring-hourly-interval",
    ),
]


@pytest.mark.parametrize(("schedule", "start", "expected"), DST_CASES)
async def test_each_instant_across_dst_is_made_exactly_once(
    client: httpx.AsyncClient,
    database: Database,
    schedule: dict[str, Any],
    start: datetime.datetime,
    expected: list[datetime.datetime],
) -> None:
    deployment = await deploy(client, schedule)
    # Passes every 20 minutes across the change, two servers' worth (a restart each pass).
    last = expected[-1] - datetime.timedelta(hours=2)
    now = start
    while now <= last:
        await Scheduler(database).run_once(now)
        await Scheduler(database).run_once(now)
        now += 20 * MINUTE
    made = await times(database, deployment)
    assert made[: len(expected)] == expected
    assert all(
        run["key"] == f"scheduled:{run['when'].isoformat()}"
        for run in await runs(database, deployment)
    )
