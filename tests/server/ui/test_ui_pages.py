"""The web UI's pages and fragments, rendered by the real application on each backend."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI
from tests.server.ui.ui_app import Seed

from conveyor.server.models import dashboard as dashboard_queries

pytestmark = pytest.mark.anyio


async def _page(ui: httpx.AsyncClient, url: str, status: int = 200) -> str:
    response = await ui.get(url)
    assert response.status_code == status, response.text[:2000]
    assert response.headers["content-type"].startswith("text/html")
    return response.text


async def test_the_dashboard_of_an_empty_database_says_what_to_do(ui: httpx.AsyncClient) -> None:
    html = await _page(ui, "/")
    assert "No flow runs were created in the last 24h" in html
    assert "No work pools yet" in html
    assert '<script src="/ui-static/htmx.min.js"' in html


async def test_the_dashboard_charts_runs_by_state_and_lists_failures(
    ui: httpx.AsyncClient, seed: Seed
) -> None:
    await seed.run(name="good-run", state="COMPLETED")
    await seed.run(name="bad-run", state="FAILED")
    html = await _page(ui, "/?range=1h")
    assert "(2 runs)" in html
    assert html.count('class="st-completed"') == 1 and html.count('class="st-failed"') == 1
    failures = html.split("Failed and crashed runs")[1].split("Late runs")[0]
    assert "bad-run" in failures and "good-run" not in failures


async def test_static_files_ship_with_the_package(ui: httpx.AsyncClient) -> None:
    htmx = await ui.get("/ui-static/htmx.min.js")
    assert htmx.status_code == 200 and "htmx" in htmx.text[:200]
    assert (await ui.get("/ui-static/conveyor.css")).status_code == 200


async def test_the_api_and_its_docs_stay_where_they_were(ui: httpx.AsyncClient) -> None:
    assert (await ui.get("/api/health")).status_code == 200
    assert (await ui.get("/docs")).status_code == 200
    paths = (await ui.get("/api/openapi.json")).json()["paths"]
    assert not [p for p in paths if not p.startswith("/api/")]  # the pages are not API


async def test_the_runs_list_filters_by_state_flow_and_tag(
    ui: httpx.AsyncClient, seed: Seed
) -> None:
    await seed.run(flow="etl", name="etl-done", state="COMPLETED", tags=["nightly"])
    await seed.run(flow="etl", name="etl-failed", state="FAILED")
    await seed.run(flow="report", name="report-done", state="COMPLETED")
    html = await _page(ui, "/flow-runs")
    assert all(name in html for name in ("etl-done", "etl-failed", "report-done"))
    html = await _page(ui, "/flow-runs?state=COMPLETED")
    assert "etl-done" in html and "report-done" in html and "etl-failed" not in html
    html = await _page(ui, "/flow-runs?flow=report")
    assert "report-done" in html and "etl-done" not in html
    html = await _page(ui, "/flow-runs?tag=nightly&range=1h")
    assert "etl-done" in html and "report-done" not in html
    html = await _page(ui, "/flow-runs?state=CRASHED")
    assert "No flow run matches these filters" in html


async def test_the_runs_list_pages_without_counting(ui: httpx.AsyncClient, seed: Seed) -> None:
    for i in range(51):
        await seed.run(name=f"run-{i:02d}")
    first = await _page(ui, "/flow-runs")
    assert first.count('name="ids"') == 50 and "Older →" in first and "run-50" in first
    second = await _page(ui, "/flow-runs?page=2")
    assert second.count('name="ids"') == 1 and "run-00" in second and "Older →" not in second
    assert "← Newer" in second


async def test_a_run_page_shows_its_timeline_logs_and_parameters(
    ui: httpx.AsyncClient, seed: Seed
) -> None:
    run_id = await seed.run(name="busy-run", parameters={"rows": 7}, state="RUNNING")
    await seed.task_run(run_id, "extract-0", "PENDING", "RUNNING", "COMPLETED")
    await seed.task_run(run_id, "load-0", "PENDING", "RUNNING")
    await seed.log(run_id, "loading 7 rows")
    await seed.log(run_id, "disk is nearly full", level=30)
    html = await _page(ui, f"/flow-runs/{run_id}")
    assert "busy-run" in html and "extract-0" in html and "load-0" in html
    assert html.count('class="gantt-row"') == 2
    assert "loading 7 rows" in html and "disk is nearly full" in html
    assert "&#34;rows&#34;: 7" in html or '"rows": 7' in html
    assert 'id="cancel-run"' in html
    warnings = await _page(ui, f"/flow-runs/{run_id}?level=WARNING")
    assert "disk is nearly full" in warnings and "loading 7 rows" not in warnings
    found = await _page(ui, f"/flow-runs/{run_id}?q=ROWS")
    assert "loading 7 rows" in found and "disk is nearly full" not in found


async def test_a_failed_run_shows_its_message_and_traceback(
    ui: httpx.AsyncClient, seed: Seed
) -> None:
    run_id = await seed.run(name="sad-run", state="RUNNING")
    traceback = 'Traceback (most recent call last):\n  File "etl.py", line 3\nValueError: bad row'
    await seed.log(run_id, f"Task run 'load-0' failed\n{traceback}", level=40)
    await seed.set_state(run_id, "FAILED", message="Flow run failed: ValueError: bad row")
    html = await _page(ui, f"/flow-runs/{run_id}")
    assert "Why it failed" in html
    assert "Flow run failed: ValueError: bad row" in html
    assert "File &#34;etl.py&#34;, line 3" in html


async def test_artifacts_render_markdown_safely_and_tables_as_tables(
    ui: httpx.AsyncClient, seed: Seed
) -> None:
    run_id = await seed.run(state="COMPLETED")
    await seed.artifact(run_id, "markdown", "# Report\n\n<script>alert(1)</script> **bold**")
    await seed.artifact(run_id, "table", [{"city": "Oslo", "rows": 3}], key="cities")
    await seed.artifact(run_id, "link", {"url": "javascript:alert(1)", "text": "click"})
    html = await _page(ui, f"/flow-runs/{run_id}")
    assert "<h1>Report</h1>" in html and "<strong>bold</strong>" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<th>city</th>" in html and "<td>Oslo</td>" in html
    assert 'href="javascript:' not in html and "not a web link" in html


async def test_an_unknown_run_is_a_page_saying_so(ui: httpx.AsyncClient) -> None:
    html = await _page(ui, "/flow-runs/00000000-0000-0000-0000-000000000000", status=404)
    assert "There is no flow run with id" in html
    await _page(ui, "/flow-runs/not-an-id", status=404)


async def test_an_unchanged_fragment_answers_204(ui: httpx.AsyncClient, seed: Seed) -> None:
    run_id = await seed.run(state="RUNNING")
    first = await ui.get(f"/fragments/flow-runs/{run_id}")
    assert first.status_code == 200
    version = re.search(r'data-version="([0-9a-f]+)"', first.text)
    assert version is not None
    again = await ui.get(f"/fragments/flow-runs/{run_id}?v={version.group(1)}")
    assert again.status_code == 204
    await seed.set_state(run_id, "COMPLETED")
    changed = await ui.get(f"/fragments/flow-runs/{run_id}?v={version.group(1)}")
    assert changed.status_code == 200 and "Completed" in changed.text


async def test_the_log_tail_sends_only_new_lines(ui: httpx.AsyncClient, seed: Seed) -> None:
    run_id = await seed.run(state="RUNNING")
    await seed.log(run_id, "first line")
    page = await _page(ui, f"/flow-runs/{run_id}")
    after = re.search(r"/logs\?after=(\d+)", page)
    assert after is not None
    url = f"/fragments/flow-runs/{run_id}/logs?after={after.group(1)}"
    assert (await ui.get(url)).status_code == 204
    await seed.log(run_id, "second line")
    tail = await ui.get(url)
    assert tail.status_code == 200
    assert "second line" in tail.text and "first line" not in tail.text
    assert 'id="log-tail"' in tail.text  # the next poller


async def test_the_log_tail_stops_once_the_run_has_long_finished(
    ui: httpx.AsyncClient, seed: Seed
) -> None:
    run_id = await seed.run(state="RUNNING")
    long_ago = {"type": "COMPLETED", "timestamp": "2020-01-01T00:00:00+00:00"}
    await seed.post(f"/flow_runs/{run_id}/set_state", {"state": long_ago, "force": True})
    tail = await ui.get(f"/fragments/flow-runs/{run_id}/logs?after=0")
    assert tail.status_code == 200 and 'id="log-tail"' not in tail.text
    page = await _page(ui, f"/flow-runs/{run_id}")
    assert "hx-trigger" not in page  # nothing on a long-finished run's page polls


async def test_child_runs_are_on_the_timeline_and_link_to_their_page(
    ui: httpx.AsyncClient, seed: Seed
) -> None:
    parent = await seed.run(name="parent-run", state="RUNNING")
    child = await seed.run(flow="child", name="child-run", parent_flow_run_id=parent)
    await seed.set_state(child, "RUNNING")
    html = await _page(ui, f"/flow-runs/{parent}")
    assert f'<a href="/flow-runs/{child}">child-run</a> <small>subflow</small>' in html
    child_page = await _page(ui, f"/flow-runs/{child}")
    assert f'child of <a href="/flow-runs/{parent}">its parent run</a>' in child_page


async def test_an_unexpected_failure_is_a_page_in_words(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(dashboard_queries, "late_runs", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://conveyor.test") as client:
        response = await client.get("/")
        assert response.status_code == 500
        assert "Something went wrong" in response.text
        assert "RuntimeError: the disk is full" in response.text
        api = await client.get("/api/health")
        assert api.status_code == 200
