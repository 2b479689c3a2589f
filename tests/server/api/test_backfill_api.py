"""POST /deployments/{id}/backfill: a run per scheduled time in [start, end) without one."""

from __future__ import annotations

import datetime
from typing import Any

import httpx
import pytest

from conveyor.server.database.engine import Database
from conveyor.server.services.scheduler import Scheduler

pytestmark = pytest.mark.anyio

UTC = datetime.timezone.utc
HOUR = datetime.timedelta(hours=1)
HOURLY = {"kind": "cron", "cron": "0 * * * *"}
# Whole hours, so the hourly schedule's times are easy to name.
NOW = datetime.datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + HOUR


async def deploy(client: httpx.AsyncClient, **fields: Any) -> str:
    body = {
        "flow_name": "etl",
        "name": "hourly",
        "entrypoint": "flows.py:etl",
        "parameters": {"n": 1},
        "schedules": [{"schedule": HOURLY, "parameters": {"n": 2}}],
        **fields,
    }
    response = await client.post("/deployments/", json=body)
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


async def backfill(
    client: httpx.AsyncClient, deployment: str, start: datetime.datetime, end: datetime.datetime
) -> dict[str, Any]:
    body = {"start": start.isoformat(), "end": end.isoformat()}
    response = await client.post(f"/deployments/{deployment}/backfill", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def runs(client: httpx.AsyncClient, deployment: str) -> list[dict[str, Any]]:
    flt = {"deployment_id": [deployment], "limit": 200, "sort": "EXPECTED_START_TIME_DESC"}
    found: list[dict[str, Any]] = (await client.post("/flow_runs/filter", json=flt)).json()
    return found[::-1]


def when(run: dict[str, Any]) -> datetime.datetime:
    return datetime.datetime.fromisoformat(run["expected_start_time"])


async def test_backfill_makes_each_missing_time_once(client: httpx.AsyncClient) -> None:
    deployment = await deploy(client)
    start = NOW - 24 * HOUR
    assert await backfill(client, deployment, start, start + 5 * HOUR) == {
        "created": 5,
        "skipped": 0,
    }
    made = await runs(client, deployment)
    assert [when(r) for r in made] == [start + i * HOUR for i in range(5)]
    assert all(r["idempotency_key"] == f"scheduled:{when(r).isoformat()}" for r in made)
    assert all(not r["auto_scheduled"] and r["state_type"] == "SCHEDULED" for r in made)
    assert all(r["parameters"] == {"n": 2} for r in made)

    # An overlapping window skips the times that have runs.
    again = await backfill(client, deployment, start + 3 * HOUR, start + 7 * HOUR)
    assert again == {"created": 2, "skipped": 2}
    assert len(await runs(client, deployment)) == 7


async def test_backfill_and_scheduler_share_times_and_edits_keep_backfills(
    client: httpx.AsyncClient, database: Database
) -> None:
    deployment = await deploy(client)
    assert await Scheduler(database).run_once(NOW) == 3  # NOW, +1h, +2h
    result = await backfill(client, deployment, NOW - 2 * HOUR, NOW + 4 * HOUR)
    assert result == {"created": 3, "skipped": 3}  # -2h, -1h, +3h made; three were there
    made = await runs(client, deployment)
    assert [when(r) for r in made] == [NOW + i * HOUR for i in range(-2, 4)]

    # A schedule edit deletes the scheduler's future runs, not the backfilled +3h.
    edit = {"schedules": [{"schedule": {"kind": "cron", "cron": "30 * * * *"}}]}
    assert (await client.patch(f"/deployments/{deployment}", json=edit)).status_code == 200
    left = [when(r) for r in await runs(client, deployment)]
    assert left[-1] == NOW + 3 * HOUR and NOW + HOUR not in left


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"start": "2025-01-02T00:00:00Z", "end": "2025-01-01T00:00:00Z"}, "end: "),
        ({"start": "2025-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"}, "end: "),
        ({"start": "2025-01-01T00:00:00", "end": "2025-01-02T00:00:00Z"}, "start: "),
        (
            {"start": "2025-01-01T00:00:00Z", "end": "2025-01-02T00:00:00Z", "max_runs": 5000},
            "max_runs: ",
        ),
    ],
)
async def test_bad_windows_are_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], detail: str
) -> None:
    deployment = await deploy(client)
    response = await client.post(f"/deployments/{deployment}/backfill", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(f"Invalid request: {detail}"), response.text
    assert await runs(client, deployment) == []


async def test_too_many_times_is_a_422_naming_max_runs_and_makes_nothing(
    client: httpx.AsyncClient,
) -> None:
    deployment = await deploy(client)
    body = {"start": "2025-01-01T00:00:00Z", "end": "2025-01-06T00:00:00Z", "max_runs": 100}
    response = await client.post(f"/deployments/{deployment}/backfill", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith("max_runs: [start, end) holds more than 100 scheduled times")
    assert "at most 1000" in detail
    assert await runs(client, deployment) == []
    # Exactly max_runs times is fine: 2025-01-01 00:00 to 04:00 is 100 hours.
    body["end"], body["max_runs"] = "2025-01-05T04:00:00Z", 100
    response = await client.post(f"/deployments/{deployment}/backfill", json=body)
    assert response.json() == {"created": 100, "skipped": 0}


async def test_an_unknown_deployment_is_404(client: httpx.AsyncClient) -> None:
    body = {"start": "2025-01-01T00:00:00Z", "end": "2025-01-02T00:00:00Z"}
    response = await client.post(
        "/deployments/00000000-0000-0000-0000-000000000000/backfill", json=body
    )
    assert response.status_code == 404
