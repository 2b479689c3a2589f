"""The deployments and work pools pages."""

from __future__ import annotations

import urllib.parse

import httpx
import pytest
from ui_app import Seed, api, app, now, seed, ui  # noqa: F401 (fixtures)

pytestmark = pytest.mark.anyio


async def _deploy(seed: Seed) -> dict[str, object]:
    await seed.post("/work_pools/", {"name": "local"})
    body = {
        "flow_name": "etl",
        "name": "daily",
        "entrypoint": "etl.py:etl",
        "work_pool_name": "local",
        "schedules": [
            {"schedule": {"kind": "cron", "cron": "0 9 * * *", "timezone": "Europe/London"}}
        ],
    }
    deployment: dict[str, object] = await seed.post("/deployments/", body)
    return deployment


async def test_deployments_show_schedules_next_runs_and_pool(
    ui: httpx.AsyncClient, seed: Seed
) -> None:
    empty = await ui.get("/deployments")
    assert "No deployments yet" in empty.text
    deployment = await _deploy(seed)
    run = await seed.post(
        f"/deployments/{deployment['id']}/create_flow_run", {"scheduled_time": now(3600)}
    )
    html = (await ui.get("/deployments")).text
    assert "etl/daily" in html and "cron 0 9 * * * (Europe/London)" in html
    assert run["name"] in html
    assert "in 59 min" in html or "in 1 h" in html
    assert "<td>local" in html


async def test_pause_and_resume_a_deployment(
    ui: httpx.AsyncClient, api: httpx.AsyncClient, seed: Seed
) -> None:
    deployment = await _deploy(seed)
    headers = {"sec-fetch-site": "same-origin"}
    paused = await ui.post(f"/deployments/{deployment['id']}/pause", headers=headers)
    assert paused.status_code == 303
    notice = urllib.parse.parse_qs(urllib.parse.urlsplit(paused.headers["location"]).query)
    assert notice["notice"][0].startswith("Paused etl/daily:")
    assert (await api.get(f"/deployments/{deployment['id']}")).json()["paused"] is True
    assert "Resume" in (await ui.get("/deployments")).text
    await ui.post(f"/deployments/{deployment['id']}/resume", headers=headers)
    assert (await api.get(f"/deployments/{deployment['id']}")).json()["paused"] is False
    missing = await ui.post(
        "/deployments/00000000-0000-0000-0000-000000000000/pause", headers=headers
    )
    assert missing.status_code == 404 and "no deployment" in missing.text


async def test_work_pools_show_queues_and_worker_health(ui: httpx.AsyncClient, seed: Seed) -> None:
    await seed.post("/work_pools/", {"name": "local", "concurrency_limit": 4})
    await seed.post("/work_pools/local/queues/", {"name": "fast", "priority": 2})
    html = (await ui.get("/work-pools")).text
    assert "at most 4 runs at once" in html and "fast" in html and "default" in html
    assert "No worker has polled this pool" in html
    await seed.post("/work_pools/local/workers/heartbeat", {"name": "worker-1"})
    html = (await ui.get("/work-pools")).text
    assert "worker-1" in html and "1 online of 1" in html
    dashboard = (await ui.get("/")).text
    assert "1 online" in dashboard
