"""Fixtures for the browser tests: a real server, real flow runs, a real headless Chromium.

* ``server: Server`` (module) -- ``conveyor server start`` on a free loopback port with its
  own ``CONVEYOR_HOME``; ``server.run_flow(name)`` runs a flow of ``FLOWS`` against it in
  a subprocess; ``deploy`` and ``start_worker`` make a deployment of one and a worker.
* ``browser`` (session) -- Debian's Chromium (``/usr/bin/chromium``) through Playwright,
  headless. Without it the tests are skipped, or fail when ``CI`` is set (``.ci/run``
  installs it: ``apt-get install chromium``).
* ``page`` -- a fresh page; after the test its screenshot is saved as
  ``test-output/screenshots/<test name>.png``, so a person can look at every page.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from tests.real_server import free_port, wait_healthy

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CONVEYOR = str(Path(sys.executable).parent / "conveyor")

FLOWS = """
import sys, time
import pydantic
from conveyor import flow, pause_flow_run, task


@task
def step(i: int) -> int:
    time.sleep(0.05)
    return i


@flow(log_prints=True)
def ui_demo(n: int = 5) -> int:
    print("starting the demo")
    total = sum(step(i) for i in range(n))
    print(f"total is {total}")
    return total


@flow(log_prints=True)
def ui_forever() -> None:
    i = 0
    while True:
        step(i)
        i += 1
        time.sleep(0.2)


@flow
def ui_fails() -> None:
    step(1)
    raise ValueError("the input file has no rows")


class Approval(pydantic.BaseModel):
    approved: bool
    rows: int = pydantic.Field(ge=1)


@flow(log_prints=True)
def ui_approval() -> str:
    step(1)
    answer = pause_flow_run(timeout=120, wait_for_input=Approval)
    print(f"approved={answer.approved} rows={answer.rows}")
    return "done"


if __name__ == "__main__":
    globals()[sys.argv[1]]()
"""


class Server:
    def __init__(self, home: Path, port: int) -> None:
        self.home = home
        self.url = f"http://127.0.0.1:{port}"
        self.api = httpx.Client(base_url=f"{self.url}/api", timeout=30)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
        self.env = {**env, "CONVEYOR_HOME": str(home), "CONVEYOR_LOGGING_LEVEL": "INFO"}
        self.flows = home / "ui_flows.py"
        self.flows.write_text(FLOWS)

    def run_flow(self, name: str) -> subprocess.Popen[bytes]:
        """The flow in its own process, recording to this server."""
        env = {**self.env, "CONVEYOR_API_URL": f"{self.url}/api"}
        return subprocess.Popen(
            [sys.executable, str(self.flows), name],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start_worker(self, pool: str) -> subprocess.Popen[bytes]:
        """``conveyor worker start`` on ``pool`` (made here, of type process)."""
        response = self.api.post("/work_pools/", json={"name": pool})
        assert response.status_code in (201, 409), response.text
        env = {**self.env, "CONVEYOR_API_URL": f"{self.url}/api"}
        return subprocess.Popen(
            [CONVEYOR, "worker", "start", "--pool", pool, "--name", f"{pool}-worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def deploy(self, flow: str, pool: str, schema: dict[str, Any]) -> str:
        """A deployment of ``FLOWS``'s function ``flow`` on ``pool``; returns its id."""
        body = {
            "flow_name": flow.replace("_", "-"),
            "name": "ui",
            "entrypoint": f"{self.flows.name}:{flow}",
            "source": {"kind": "local", "path": str(self.home)},
            "work_pool_name": pool,
            "parameter_schema": schema,
        }
        response = self.api.post("/deployments/", json=body)
        assert response.status_code in (200, 201), response.text
        return str(response.json()["id"])

    def runs_of(self, flow: str) -> list[dict[str, Any]]:
        response = self.api.post("/flow_runs/filter", json={"flow_name": [flow]})
        assert response.status_code == 200, response.text
        runs: list[dict[str, Any]] = response.json()
        return runs

    def wait_for_run(self, flow: str, *states: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            runs = [r for r in self.runs_of(flow) if not states or r["state_type"] in states]
            if runs:
                return runs[0]
            assert time.monotonic() < deadline, f"no run of {flow} in {states}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("ui-server-home")
    running = Server(home, free_port())
    env = {**running.env, "CONVEYOR_SERVER_SERVICES_ENABLED": "false"}
    port = running.url.rsplit(":", 1)[1]
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [CONVEYOR, "server", "start", "--port", port, "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_healthy(f"{running.url}/api", process, (home / "server.log").read_text)
        yield running
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


# Module scope, not session: Playwright's sync API keeps an event loop running in this
# thread while it is open, and the async tests collected after these could not start theirs.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install it with `apt-get install chromium`"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    try:
        yield tab
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        context.close()
