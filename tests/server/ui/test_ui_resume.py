"""Resuming a paused or suspended run from its page: a plain button, or a form made from
the input schema its pause stored, answered in words (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime
import re
import urllib.parse
from typing import Any

import httpx
import pytest
from tests.server.ui.ui_app import Seed

pytestmark = pytest.mark.anyio

SAME_SITE = {"sec-fetch-site": "same-origin"}
FORM = {**SAME_SITE, "content-type": "application/x-www-form-urlencoded"}
SCHEMA = {
    "type": "object",
    "title": "Approval",
    "properties": {
        "approved": {"type": "boolean", "title": "Approved"},
        "rows": {"type": "integer", "title": "Rows", "minimum": 1},
        "reviewer": {"type": "string", "title": "Reviewer", "default": "anonymous"},
    },
    "required": ["approved", "rows"],
}


def _in(seconds: float) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return moment.isoformat()


async def _paused(
    seed: Seed,
    *,
    schema: dict[str, Any] | None = None,
    suspended: bool = False,
    expires_in: float = 3600,
) -> str:
    run_id = await seed.run(state="RUNNING")
    details: dict[str, Any] = {
        "pause_timeout": _in(expires_in),
        "pause_reschedule": suspended,
        "pause_key": "pause-1",
        "run_input_schema": schema,
    }
    state = {"type": "PAUSED", "name": "Suspended" if suspended else "Paused"}
    await seed.post(
        f"/flow_runs/{run_id}/set_state",
        {"state": {**state, "state_details": details}, "force": True},
    )
    return run_id


async def _resume(ui: httpx.AsyncClient, run_id: str, form: list[tuple[str, str]]) -> str:
    """Posts the Resume form; returns the notice the run's page is sent back with."""
    url = f"/flow-runs/{run_id}/resume"
    response = await ui.post(url, content=urllib.parse.urlencode(form), headers=FORM)
    assert response.status_code == 303, response.text
    location = urllib.parse.urlsplit(response.headers["location"])
    assert location.path == f"/flow-runs/{run_id}"
    return urllib.parse.parse_qs(location.query)["notice"][0]


async def _current(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    states: list[dict[str, Any]] = (await api.get(f"/flow_runs/{run_id}/states")).json()
    return states[-1]


async def test_a_pause_asking_for_input_shows_a_form_from_its_schema(
    ui: httpx.AsyncClient, api: httpx.AsyncClient, seed: Seed
) -> None:
    run_id = await _paused(seed, schema=SCHEMA)
    html = (await ui.get(f"/flow-runs/{run_id}")).text
    assert "Paused: waiting to be resumed" in html
    assert 'type="checkbox" id="p-approved" name="approved"' in html
    assert 'id="p-rows" name="rows" value=""' in html
    assert 'id="p-reviewer" name="reviewer" value="anonymous"' in html
    assert 'id="resume-run"' in html

    bad = [("approved", "true"), ("rows", "many")]
    response = await ui.post(
        f"/flow-runs/{run_id}/resume", content=urllib.parse.urlencode(bad), headers=FORM
    )
    assert response.status_code == 422
    assert "The input needs fixing" in response.text
    assert "rows: &#39;many&#39; is not a whole number" in response.text
    assert 'id="p-rows" name="rows" value="many"' in response.text  # what was typed stays
    too_few = [("approved", "true"), ("rows", "0")]
    response = await ui.post(
        f"/flow-runs/{run_id}/resume", content=urllib.parse.urlencode(too_few), headers=FORM
    )
    assert response.status_code == 422
    assert "rows: 0 is less than the minimum of 1" in response.text
    assert (await _current(api, run_id))["type"] == "PAUSED"

    notice = await _resume(ui, run_id, [("approved", "true"), ("rows", "5"), ("reviewer", "")])
    assert notice == "Run resumed: its process carries on."
    state = await _current(api, run_id)
    assert (state["type"], state["name"]) == ("RUNNING", "Resumed")
    assert state["details"]["run_input"] == {"approved": True, "rows": 5}
    assert state["details"]["pause_key"] == "pause-1"
    html = (await ui.get(f"/flow-runs/{run_id}")).text
    assert 'id="resume-run"' not in html


async def test_a_pause_without_input_has_a_plain_button(
    ui: httpx.AsyncClient, api: httpx.AsyncClient, seed: Seed
) -> None:
    run_id = await _paused(seed)
    html = (await ui.get(f"/flow-runs/{run_id}")).text
    assert 'id="resume-run"' in html and 'class="field' not in html
    assert await _resume(ui, run_id, []) == "Run resumed: its process carries on."
    assert (await _current(api, run_id))["type"] == "RUNNING"


async def test_a_suspended_run_is_scheduled_again(
    ui: httpx.AsyncClient, api: httpx.AsyncClient, seed: Seed
) -> None:
    run_id = await _paused(seed, suspended=True)
    html = (await ui.get(f"/flow-runs/{run_id}")).text
    assert "Suspended: waiting to be resumed" in html and "from the start" in html
    notice = await _resume(ui, run_id, [])
    assert notice == "Run resumed: it is scheduled again, for a worker of its pool to run."
    state = await _current(api, run_id)
    assert (state["type"], state["name"]) == ("SCHEDULED", "Resumed")


async def test_an_expired_or_finished_run_is_not_resumed_and_the_page_says_why(
    ui: httpx.AsyncClient, api: httpx.AsyncClient, seed: Seed
) -> None:
    expired = await _paused(seed, expires_in=-5)
    html = (await ui.get(f"/flow-runs/{expired}")).text
    assert "The pause expired at" in html and 'id="resume-run"' not in html
    notice = await _resume(ui, expired, [])
    assert notice.startswith("Not resumed: The pause expired at ")
    assert (await _current(api, expired))["type"] == "PAUSED"

    finished = await seed.run(state="COMPLETED")
    assert 'id="resume-run"' not in (await ui.get(f"/flow-runs/{finished}")).text
    notice = await _resume(ui, finished, [])
    assert notice == (
        "Not resumed: The run is Completed (COMPLETED), not paused; "
        "only a paused run can be resumed."
    )


async def test_the_panel_is_left_alone_by_polls_until_the_pause_changes(
    ui: httpx.AsyncClient, seed: Seed
) -> None:
    run_id = await _paused(seed, schema=SCHEMA)
    bad = [("approved", "true"), ("rows", "many")]
    response = await ui.post(
        f"/flow-runs/{run_id}/resume", content=urllib.parse.urlencode(bad), headers=FORM
    )
    # The form with its errors carries the blank form's version: a poll answers 204.
    found = re.search(r'id="run-resume" data-version="(\w+)"', response.text)
    assert found is not None
    poll = await ui.get(f"/fragments/flow-runs/{run_id}/resume", params={"v": found[1]})
    assert poll.status_code == 204
    await _resume(ui, run_id, [("approved", "true"), ("rows", "2")])
    poll = await ui.get(f"/fragments/flow-runs/{run_id}/resume", params={"v": found[1]})
    assert poll.status_code == 200 and 'id="resume-run"' not in poll.text


async def test_unknown_runs_and_cross_site_posts_are_refused(
    ui: httpx.AsyncClient, api: httpx.AsyncClient, seed: Seed
) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    response = await ui.post(f"/flow-runs/{missing}/resume", headers=FORM)
    assert response.status_code == 404 and "There is no flow run" in response.text
    assert (await ui.get(f"/fragments/flow-runs/{missing}/resume")).status_code == 404
    run_id = await _paused(seed)
    response = await ui.post(
        f"/flow-runs/{run_id}/resume", headers={"sec-fetch-site": "cross-site"}
    )
    assert response.status_code == 403
    assert (await _current(api, run_id))["type"] == "PAUSED"
