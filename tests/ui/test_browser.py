"""The web UI in a real browser, against a real server and real flow runs.

Each test leaves a screenshot in test-output/screenshots/ (see conftest.py).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

LIVE_SECONDS = 15  # generous: the pages refresh every 1.5 s, the CI machine may be slow


@pytest.fixture(scope="module")
def finished_runs(server: Any) -> Iterator[dict[str, dict[str, Any]]]:
    """One completed and one failed run, recorded before the tests look (flows are named
    with dashes: ``ui_demo`` is flow ``ui-demo``)."""
    for name in ("ui_demo", "ui_fails"):
        assert server.run_flow(name).wait(timeout=60) in (0, 1)
    yield {
        "ui_demo": server.wait_for_run("ui-demo", "COMPLETED"),
        "ui_fails": server.wait_for_run("ui-fails", "FAILED"),
    }


def test_the_dashboard_shows_runs_by_state_and_failures(
    page: Page, server: Any, finished_runs: dict[str, dict[str, Any]]
) -> None:
    page.goto(server.url)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.locator("svg.chart rect.st-completed").first).to_be_visible()
    failures = page.locator("section", has_text="Failed and crashed runs")
    expect(failures.get_by_role("link", name=finished_runs["ui_fails"]["name"])).to_be_visible()


def test_filter_the_runs_by_state(
    page: Page, server: Any, finished_runs: dict[str, dict[str, Any]]
) -> None:
    page.goto(f"{server.url}/flow-runs")
    expect(page.get_by_role("link", name=finished_runs["ui_demo"]["name"])).to_be_visible()
    page.get_by_label("State").select_option("FAILED")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"state=FAILED"))
    expect(page.get_by_role("link", name=finished_runs["ui_fails"]["name"])).to_be_visible()
    expect(page.get_by_role("link", name=finished_runs["ui_demo"]["name"])).to_have_count(0)
    for badge in page.locator("#runs-live tbody .state").all():
        expect(badge).to_have_text("Failed")


def test_a_run_shows_its_task_timeline_and_logs(
    page: Page, server: Any, finished_runs: dict[str, dict[str, Any]]
) -> None:
    page.goto(f"{server.url}/flow-runs?flow=ui-demo")
    page.get_by_role("link", name=finished_runs["ui_demo"]["name"]).click()
    expect(page.locator(".gantt-row")).to_have_count(5)
    expect(page.locator(".gantt-name", has_text="step-0")).to_be_visible()
    expect(page.locator("#log-lines")).to_contain_text("total is 10")
    page.get_by_label("Search").fill("starting")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#log-lines")).to_contain_text("starting the demo")
    expect(page.locator("#log-lines")).not_to_contain_text("total is 10")


def test_a_failed_run_says_why_with_its_traceback(
    page: Page, server: Any, finished_runs: dict[str, dict[str, Any]]
) -> None:
    page.goto(f"{server.url}/flow-runs/{finished_runs['ui_fails']['id']}")
    failure = page.locator(".card.failure")
    expect(failure).to_contain_text("Why it failed")
    expect(failure).to_contain_text("the input file has no rows")
    expect(failure.locator("pre.traceback")).to_contain_text("ValueError")


def test_a_new_run_appears_in_the_list_without_a_reload(page: Page, server: Any) -> None:
    page.goto(f"{server.url}/flow-runs?flow=ui-demo")
    before = page.locator("#runs-live tbody tr").count()
    process = server.run_flow("ui_demo")
    try:
        expect(page.locator("#runs-live tbody tr")).to_have_count(
            before + 1, timeout=LIVE_SECONDS * 1000
        )
    finally:
        process.wait(timeout=60)


def test_cancel_a_running_run(page: Page, server: Any) -> None:
    process: subprocess.Popen[bytes] = server.run_flow("ui_forever")
    try:
        run = server.wait_for_run("ui-forever", "RUNNING")
        page.goto(f"{server.url}/flow-runs/{run['id']}")
        expect(page.locator("h1 .state")).to_have_text("Running")
        rows = page.locator(".gantt-row")
        seen = rows.count()
        expect(rows).not_to_have_count(seen, timeout=LIVE_SECONDS * 1000)  # live timeline
        page.get_by_role("button", name="Cancel run").click()
        expect(page.locator(".notice")).to_have_text("Run cancelled: it is now Cancelling.")
        expect(page.locator("h1 .state")).to_have_text("Cancelled", timeout=LIVE_SECONDS * 1000)
        expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
        assert process.wait(timeout=30) != 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_start_a_deployment_run_from_its_form(page: Page, server: Any) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}
    worker: subprocess.Popen[bytes] = server.start_worker("ui-pool")
    try:
        deployment_id = server.deploy("ui_demo", "ui-pool", schema)
        page.goto(f"{server.url}/deployments")
        row = page.locator("tr", has_text="ui-demo/ui")
        row.get_by_role("link", name="Run…").click()
        expect(page).to_have_url(f"{server.url}/deployments/{deployment_id}/run")
        page.get_by_label("n").fill("zero")
        page.get_by_role("button", name="Start run").click()
        expect(page.locator(".field-error")).to_have_text("n: 'zero' is not a whole number")
        page.get_by_label("n").fill("0")
        page.get_by_role("button", name="Start run").click()
        expect(page.locator(".field-error")).to_have_text("n: 0 is less than the minimum of 1")
        page.get_by_label("n").fill("4")
        page.get_by_role("button", name="Start run").click()
        expect(page.locator(".notice")).to_contain_text("Run scheduled")
        expect(page.locator("h1 .state")).to_have_text("Completed", timeout=60_000)
        expect(page.locator(".gantt-row")).to_have_count(4)
        expect(page.locator("#log-lines")).to_contain_text("total is 6")
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_resume_a_paused_run_with_input_from_its_page(page: Page, server: Any) -> None:
    process: subprocess.Popen[bytes] = server.run_flow("ui_approval")
    try:
        run = server.wait_for_run("ui-approval", "PAUSED")
        page.goto(f"{server.url}/flow-runs/{run['id']}")
        expect(page.locator("h1 .state")).to_have_text("Paused")
        page.get_by_label("Rows").fill("many")
        page.get_by_role("button", name="Resume run").click()
        expect(page.locator(".field-error")).to_have_text("rows: 'many' is not a whole number")
        page.get_by_label("Approved").check()
        page.get_by_label("Rows").fill("3")
        page.get_by_role("button", name="Resume run").click()
        expect(page.locator(".notice")).to_have_text("Run resumed: its process carries on.")
        expect(page.locator("h1 .state")).to_have_text("Completed", timeout=LIVE_SECONDS * 1000)
        expect(page.get_by_role("button", name="Resume run")).to_have_count(0)
        expect(page.locator("#log-lines")).to_contain_text("approved=True rows=3")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
