"""Acting from the web UI: cancel and retry, one run or many, answered in words."""

from __future__ import annotations

import urllib.parse
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tests.server.ui.ui_app import Seed

pytestmark = pytest.mark.anyio

SAME_SITE = {"sec-fetch-site": "same-origin"}


async def _state(api: httpx.AsyncClient, run_id: str) -> tuple[str, str]:
    run: dict[str, Any] = (await api.get(f"/flow_runs/{run_id}")).json()
    return run["state_type"], run["state_name"]


async def _post(ui: httpx.AsyncClient, url: str, form: list[tuple[str, str]]) -> str:
    """Posts the form like a browser on the page; returns the notice it is sent back with."""
    headers = {**SAME_SITE, "content-type": "application/x-www-form-urlencoded"}
    response = await ui.post(url, content=urllib.parse.urlencode(form), headers=headers)
    assert response.status_code == 303, response.text
    query = urllib.parse.urlsplit(response.headers["location"]).query
    return urllib.parse.parse_qs(query)["notice"][0]


async def test_cancel_a_running_run_from_its_page(
    ui: httpx.AsyncClient, api: httpx.AsyncClient, seed: Seed
) -> None:
    run_id = await seed.run(state="RUNNING")
    notice = await _post(ui, f"/flow-runs/{run_id}/cancel", [])
    assert notice == "Run cancelled: it is now Cancelling."
    assert await _state(api, run_id) == ("CANCELLING", "Cancelling")
    finished = await seed.run(state="COMPLETED")
    notice = await _post(ui, f"/flow-runs/{finished}/cancel", [])
    assert notice.startswith("Not cancelled: ") and "finished" in notice


async def test_bulk_cancel_says_which_runs_were_not_cancelled(
    ui: httpx.AsyncClient, api: httpx.AsyncClient, seed: Seed
) -> None:
    pending = await seed.run(name="waiting")
    running = await seed.run(name="working", state="RUNNING")
    done = await seed.run(name="finished", state="COMPLETED")
    form = [("action", "cancel"), ("back", "/flow-runs?state=RUNNING")]
    form += [("ids", run_id) for run_id in (pending, running, done)]
    notice = await _post(ui, "/flow-runs/bulk", form)
    assert notice.startswith("2 runs cancelled. 1 not cancelled: ")
    assert await _state(api, pending) == ("CANCELLED", "Cancelled")
    assert await _state(api, running) == ("CANCELLING", "Cancelling")
    assert await _state(api, done) == ("COMPLETED", "Completed")


async def test_bulk_with_nothing_ticked_says_so(ui: httpx.AsyncClient) -> None:
    notice = await _post(ui, "/flow-runs/bulk", [("action", "retry"), ("back", "/flow-runs")])
    assert notice == "No runs were selected: tick the boxes of the runs first."


async def test_retry_schedules_a_failed_deployment_run_again_and_wakes_workers(
    ui: httpx.AsyncClient, api: httpx.AsyncClient, seed: Seed, app: FastAPI
) -> None:
    deployment = await seed.post(
        "/deployments/", {"flow_name": "etl", "name": "daily", "entrypoint": "etl.py:etl"}
    )
    run = await seed.post(f"/deployments/{deployment['id']}/create_flow_run", {})
    await seed.set_state(run["id"], "FAILED", message="boom")
    page = await ui.get(f"/flow-runs/{run['id']}")
    assert 'id="retry-run"' in page.text
    waiting = app.state.claim_waiters.event("default")  # a worker long-polling a pool
    notice = await _post(ui, "/flow-runs/bulk", [("action", "retry"), ("ids", run["id"])])
    assert notice == "1 run retried."
    assert await _state(api, run["id"]) == ("SCHEDULED", "AwaitingRetry")
    assert waiting.is_set()  # woken: it claims the run now, not at its next recheck
    await seed.set_state(run["id"], "FAILED", message="again")
    waiting = app.state.claim_waiters.event("default")
    notice = await _post(ui, f"/flow-runs/{run['id']}/retry", [])
    assert notice == "Run retried: it is now AwaitingRetry."
    assert waiting.is_set()


async def test_a_run_without_a_deployment_cannot_be_retried(
    ui: httpx.AsyncClient, api: httpx.AsyncClient, seed: Seed
) -> None:
    run_id = await seed.run(name="local-run", state="FAILED")
    notice = await _post(ui, f"/flow-runs/{run_id}/retry", [])
    assert "was not made from a deployment" in notice and "run its flow again" in notice
    assert await _state(api, run_id) == ("FAILED", "Failed")


async def test_a_post_from_another_site_is_refused(
    ui: httpx.AsyncClient, api: httpx.AsyncClient, seed: Seed
) -> None:
    run_id = await seed.run(state="RUNNING")
    for headers in ({"sec-fetch-site": "cross-site"}, {"origin": "https://evil.example"}):
        response = await ui.post(f"/flow-runs/{run_id}/cancel", headers=headers)
        assert response.status_code == 403
        assert "posted from another site" in response.text
    assert await _state(api, run_id) == ("RUNNING", "Running")
