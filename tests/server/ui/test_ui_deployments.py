"""The deployments and work pools pages."""

from __future__ import annotations

import urllib.parse

import httpx
import pytest
from tests.server.ui.ui_app import Seed, now

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


SCHEMA = {
    "type": "object",
    "properties": {
        "rows": {"type": "integer", "minimum": 1, "description": "how many rows to load"},
        "table": {"type": "string"},
        "mode": {"enum": ["append", "replace"]},
        "dry_run": {"type": "boolean"},
    },
    "required": ["table"],  # (a deployment's defaults must hold every required one)
}


async def _form_deployment(seed: Seed) -> str:
    body = {
        "flow_name": "etl",
        "name": "manual",
        "entrypoint": "etl.py:etl",
        "parameter_schema": SCHEMA,
        "parameters": {"table": "events"},
    }
    deployment = await seed.post("/deployments/", body)
    return str(deployment["id"])


async def _submit(
    ui: httpx.AsyncClient, deployment_id: str, form: dict[str, str]
) -> httpx.Response:
    headers = {"sec-fetch-site": "same-origin", "content-type": "application/x-www-form-urlencoded"}
    content = urllib.parse.urlencode(form)
    return await ui.post(f"/deployments/{deployment_id}/run", content=content, headers=headers)


async def test_the_run_form_is_made_from_the_parameter_schema(
    ui: httpx.AsyncClient, seed: Seed
) -> None:
    deployment_id = await _form_deployment(seed)
    html = (await ui.get(f"/deployments/{deployment_id}/run")).text
    assert 'name="rows"' in html and "how many rows to load" in html
    assert 'name="table" value="events"' in html  # the deployment's default
    assert "<option>append</option>" in html and 'type="checkbox"' in html


async def test_bad_parameters_are_named_next_to_their_fields(
    ui: httpx.AsyncClient, api: httpx.AsyncClient, seed: Seed
) -> None:
    deployment_id = await _form_deployment(seed)
    response = await _submit(ui, deployment_id, {"rows": "many", "table": "events"})
    assert response.status_code == 422
    assert "rows: &#39;many&#39; is not a whole number" in response.text
    response = await _submit(ui, deployment_id, {"rows": "0", "table": "events"})
    assert response.status_code == 422 and "rows: 0 is less than the minimum of 1" in response.text
    response = await _submit(ui, deployment_id, {"rows": "2", "mode": "sideways"})
    assert response.status_code == 422 and "mode: &#39;sideways&#39; is not one of" in response.text
    runs = (await api.post("/flow_runs/filter", json={})).json()
    assert runs == []  # nothing was made


async def test_good_parameters_start_a_run(
    ui: httpx.AsyncClient, api: httpx.AsyncClient, seed: Seed
) -> None:
    deployment_id = await _form_deployment(seed)
    form = {"rows": "5", "table": "", "mode": "replace", "dry_run": "true"}
    response = await _submit(ui, deployment_id, form)
    assert response.status_code == 303
    run_id = response.headers["location"].split("/flow-runs/")[1].split("?")[0]
    run = (await api.get(f"/flow_runs/{run_id}")).json()
    assert run["state_type"] == "SCHEDULED"
    assert run["parameters"] == {"rows": 5, "table": "events", "mode": "replace", "dry_run": True}
