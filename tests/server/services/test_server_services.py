"""The server runs its services from start-up to shutdown, as its settings say."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.server.app import create_app
from conveyor.settings import DEFAULT_SERVICE_INTERVALS, ServicesSettings, Settings, env_errors

pytestmark = pytest.mark.anyio

ALWAYS_ON = [
    "late_runs",
    "cancellation_cleanup",
    "expired_leases",
    "scheduler",
    "reaper",
    "rescheduler",
    "pauses",
]


def settings(tmp_path: Path, database_url: str, **services: Any) -> Settings:
    return Settings(home=tmp_path, database_url=database_url, services=ServicesSettings(**services))


async def test_the_lifespan_starts_and_stops_the_services(
    database_url: str, tmp_path: Path
) -> None:
    app = create_app(
        settings(tmp_path, database_url, intervals={"late_runs": 0.05}),
        migrate=False,
        services=True,
    )
    async with app.router.lifespan_context(app):
        loops = app.state.services
        assert [s.name for s in loops] == ALWAYS_ON
        assert all(s.running for s in loops)
        assert loops[0].interval == 0.05
        # The services work on the server's database: a late run is marked within passes.
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t/api") as client:
            due = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)
            state = {"type": "SCHEDULED", "state_details": {"scheduled_time": due.isoformat()}}
            body = {"flow_name": "etl", "name": "r", "state": state}
            run_id = (await client.post("/flow_runs/", json=body)).json()["id"]
            for _ in range(200):
                if (await client.get(f"/flow_runs/{run_id}")).json()["state_name"] == "Late":
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("the running LateRuns service did not mark the run Late")
    assert not any(s.running for s in loops)


@pytest.mark.parametrize(
    ("services", "expected"),
    [
        ({}, ALWAYS_ON),
        ({"retention_days": 30.0}, [*ALWAYS_ON, "retention"]),
        ({"disabled": frozenset({"late_runs"})}, ALWAYS_ON[1:]),
        ({"enabled": False, "retention_days": 30.0}, []),
    ],
)
async def test_settings_choose_the_services(
    database_url: str, tmp_path: Path, services: dict[str, Any], expected: list[str]
) -> None:
    app = create_app(settings(tmp_path, database_url, **services), migrate=False, services=True)
    async with app.router.lifespan_context(app):
        assert [s.name for s in app.state.services] == expected


async def test_apps_run_no_services_unless_asked(database_url: str, tmp_path: Path) -> None:
    # The embedded local database and the tests use create_app without services.
    app = create_app(settings(tmp_path, database_url), migrate=False)
    async with app.router.lifespan_context(app):
        assert app.state.services == []


def test_services_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_SERVER_SERVICES_LATE_RUNS_ENABLED", "false")
    monkeypatch.setenv("CONVEYOR_SERVER_SERVICES_EXPIRED_LEASES_INTERVAL_SECONDS", "2.5")
    monkeypatch.setenv("CONVEYOR_SERVER_LATE_RUNS_AFTER_SECONDS", "30")
    monkeypatch.setenv("CONVEYOR_SERVER_RETENTION_DAYS", "7")
    monkeypatch.setenv("CONVEYOR_SERVER_REAPER_AFTER_SECONDS", "5")
    monkeypatch.setenv("CONVEYOR_SERVER_RESCHEDULER_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("CONVEYOR_SERVER_RESCHEDULER_DELAY_SECONDS", "1")
    services = Settings.from_env().services
    assert services == ServicesSettings(
        disabled=frozenset({"late_runs"}),
        intervals={**DEFAULT_SERVICE_INTERVALS, "expired_leases": 2.5},
        late_runs_after_seconds=30.0,
        retention_days=7.0,
        reaper_after_seconds=5.0,
        rescheduler_max_attempts=2,
        rescheduler_delay_seconds=1.0,
    )
    monkeypatch.setenv("CONVEYOR_SERVER_SERVICES_ENABLED", "no")
    assert not Settings.from_env().services.runs("retention")
    monkeypatch.setenv("CONVEYOR_SERVER_RETENTION_DAYS", "forever")
    assert env_errors() == ["CONVEYOR_SERVER_RETENTION_DAYS='forever' is not a positive number."]
