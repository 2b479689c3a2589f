"""End to end: when a worker and its run's process die without a word (kill -9, as when
their machine goes), the server's reaper makes the run Crashed once its heartbeats stop,
the rescheduler schedules it again, and another worker runs it to completion."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.real_server import CONVEYOR, running_server

FLOWS = """
import os, time
from conveyor import flow

@flow
def once() -> str:
    marker = os.environ["MARKER"]
    if os.path.exists(marker):
        return "second time lucky"
    with open(marker, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(120)
    return "never"
"""

# Short enough for a test, long enough that a healthy run's first beats are not missed.
SERVICES = {
    "CONVEYOR_SERVER_REAPER_AFTER_SECONDS": "8",
    "CONVEYOR_SERVER_SERVICES_REAPER_INTERVAL_SECONDS": "1",
    "CONVEYOR_SERVER_SERVICES_RESCHEDULER_INTERVAL_SECONDS": "1",
    "CONVEYOR_SERVER_RESCHEDULER_DELAY_SECONDS": "1",
}


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    return {**env, "CONVEYOR_HOME": str(home), **extra}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with running_server(_env(tmp_path / "server", **SERVICES)) as url:
        yield url


def _worker(server: str, home: Path, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CONVEYOR, "worker", "start", "--pool", "p", "--name", name],
        env=_env(home, CONVEYOR_API_URL=server),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(http: httpx.Client, run_id: str, *types: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = http.get(f"/flow_runs/{run_id}").json()
        if run["state_type"] in types:
            return run
        assert time.monotonic() < deadline, f"run is {run['state_name']}, not {types}"
        time.sleep(0.1)


def _history(http: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    states: list[dict[str, Any]] = http.get(f"/flow_runs/{run_id}/states").json()
    return states


@pytest.mark.timeout(90)
def test_a_run_whose_worker_died_is_crashed_rescheduled_and_run_again(
    server: str, tmp_path: Path
) -> None:
    code, marker = tmp_path / "code", tmp_path / "marker"
    code.mkdir()
    (code / "flows.py").write_text(FLOWS)
    http = httpx.Client(base_url=server, timeout=30)
    assert http.post("/work_pools/", json={"name": "p"}).status_code == 201
    deployment = {
        "flow_name": "once",
        "name": "d",
        "entrypoint": "flows.py:once",
        "source": {"kind": "local", "path": str(code)},
        "work_pool_name": "p",
        "job_variables": {"env": {"MARKER": str(marker)}},
    }
    deployment_id = http.post("/deployments/", json=deployment).json()["id"]
    run_id = http.post(f"/deployments/{deployment_id}/create_flow_run", json={}).json()["id"]

    first = _worker(server, tmp_path, "first")
    second: subprocess.Popen[str] | None = None
    try:
        _wait_for(http, run_id, "RUNNING", timeout=30)
        deadline = time.monotonic() + 10
        while not marker.exists() or not marker.read_text():
            assert time.monotonic() < deadline, "the flow never started"
            time.sleep(0.05)
        # The machine goes: the worker and the run's process (its own group) die at once.
        first.kill()
        os.killpg(int(marker.read_text()), signal.SIGKILL)
        killed = time.monotonic()

        # The rescheduler may move it on within a second: look for Crashed in the history.
        while not any(s["type"] == "CRASHED" for s in _history(http, run_id)):
            assert time.monotonic() - killed < 30, "the run was not reaped within 30 s"
            time.sleep(0.1)
        second = _worker(server, tmp_path, "second")
        run = _wait_for(http, run_id, "COMPLETED", "FAILED", timeout=30)
    finally:
        first.kill()
        first.communicate(timeout=10)
        if second is not None:
            second.send_signal(signal.SIGTERM)
            _, stderr = second.communicate(timeout=30)
    assert run["state_type"] == "COMPLETED", stderr
    states = _history(http, run_id)
    assert [(s["type"], s["name"]) for s in states] == [
        ("SCHEDULED", "Scheduled"),
        ("PENDING", "Pending"),
        ("RUNNING", "Running"),
        ("CRASHED", "Crashed"),
        ("SCHEDULED", "Rescheduled"),
        ("PENDING", "Pending"),
        ("RUNNING", "Running"),
        ("COMPLETED", "Completed"),
    ]
    assert states[3]["message"].startswith("No heartbeat from its worker since")
    assert states[5]["message"] == "Claimed by worker 'second'."
