"""End to end, real processes, on SQLite and PostgreSQL: a flow pauses in its process and
is resumed from the CLI; a deployment's run launched by a real process worker suspends,
its process exits (not Crashed), and once resumed the worker runs it again, the second
execution getting the input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.real_server import CONVEYOR, running_server

PAUSING_FLOW = textwrap.dedent(
    """
    import pydantic
    from conveyor import flow, pause_flow_run
    from conveyor.engine.context import get_run_context

    class Approval(pydantic.BaseModel):
        approved: bool
        rows: int = 0

    @flow
    def approval() -> str:
        print(get_run_context().flow_run.id, flush=True)
        answer = pause_flow_run(timeout=60, wait_for_input=Approval)
        return f"approved={answer.approved} rows={answer.rows}"

    print("result", approval(), flush=True)
    """
)

DEPLOYED_FLOWS = textwrap.dedent(
    """
    import pydantic
    from conveyor import flow, suspend_flow_run, task

    class Go(pydantic.BaseModel):
        rows: int

    @task
    def prepare() -> int:
        print("preparing", flush=True)
        return 1

    @flow
    def gated() -> int:
        prepare()
        go = suspend_flow_run(timeout=600, wait_for_input=Go)
        print("got input", go.rows, flush=True)
        return go.rows
    """
)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    return {**env, "CONVEYOR_HOME": str(home), "CONVEYOR_LOGGING_LEVEL": "INFO", **extra}


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[str]:
    env = _env(
        tmp_path / "server-home",
        CONVEYOR_DATABASE_URL=database_url,
        CONVEYOR_SERVER_SERVICES_ENABLED="false",
    )
    with running_server(env) as url:
        yield url


class Api:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.post(path, json=body or {})
        assert response.status_code < 300, response.text
        return response.json()

    def run(self, run_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.http.get(f"/flow_runs/{run_id}").json()
        return data

    def history(self, run_id: str) -> list[tuple[str, str]]:
        states = self.http.get(f"/flow_runs/{run_id}/states").json()
        return [(s["type"], s["name"]) for s in states]

    def wait_for(self, run_id: str, *types: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)  # a run started in-process arrives with its first batch
            if run.get("state_type") in types:
                return run
            assert time.monotonic() < deadline, f"run is {run.get('state_name')}, not {types}"
            time.sleep(0.05)


def _conveyor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CONVEYOR, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.timeout(120)
def test_a_paused_flow_is_resumed_from_the_cli_with_input(server: str, tmp_path: Path) -> None:
    api = Api(server)
    env = _env(tmp_path / "home", CONVEYOR_API_URL=server)
    flow = subprocess.Popen(
        [sys.executable, "-c", PAUSING_FLOW],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert flow.stdout is not None
        run_id = flow.stdout.readline().strip()
        assert run_id, flow.communicate(timeout=30)
        api.wait_for(run_id, "PAUSED")

        not_json = _conveyor(env, "flow-run", "resume", run_id, "--input", "{approved")
        assert not_json.returncode == 1
        assert not_json.stderr.startswith("Error: --input is not JSON")
        assert len(not_json.stderr.strip().splitlines()) == 1
        not_object = _conveyor(env, "flow-run", "resume", run_id, "--input", "[1]")
        assert not_object.returncode == 1 and "must be a JSON object" in not_object.stderr
        wrong = _conveyor(env, "flow-run", "resume", run_id, "--input", '{"approved": "x"}')
        assert wrong.returncode == 1
        assert "run_input.approved" in wrong.stderr and "(HTTP 422)" in wrong.stderr
        assert len(wrong.stderr.strip().splitlines()) == 1
        assert api.run(run_id)["state_type"] == "PAUSED"

        started = time.monotonic()
        resumed = _conveyor(
            env, "flow-run", "resume", run_id, "--input", '{"approved": true, "rows": 5}'
        )
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.stdout.strip() == f"Resumed flow run {run_id}."
        stdout, stderr = flow.communicate(timeout=30)
        waited = time.monotonic() - started
    finally:
        if flow.poll() is None:
            flow.kill()
    assert flow.returncode == 0, stderr
    assert "result approved=True rows=5" in stdout
    assert waited < 5  # the CLI's own start-up included
    assert api.history(run_id) == [
        ("RUNNING", "Running"),
        ("PAUSED", "Paused"),
        ("RUNNING", "Resumed"),
        ("COMPLETED", "Completed"),
    ]

    again = _conveyor(env, "flow-run", "resume", run_id)
    assert again.returncode == 1
    assert "not paused" in again.stderr and "(HTTP 409)" in again.stderr


@pytest.mark.timeout(180)
def test_a_suspended_deployment_run_is_run_again_by_its_worker_when_resumed(
    server: str, tmp_path: Path
) -> None:
    api = Api(server)
    code = tmp_path / "code"
    code.mkdir()
    (code / "flows.py").write_text(DEPLOYED_FLOWS)
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    api.post("/work_pools/", {"name": pool})
    deployment = api.post(
        "/deployments/",
        {
            "flow_name": "gated",
            "name": "d",
            "entrypoint": "flows.py:gated",
            "source": {"kind": "local", "path": str(code)},
            "work_pool_name": pool,
        },
    )
    env = _env(tmp_path / "home", CONVEYOR_API_URL=server)
    worker = subprocess.Popen(
        [CONVEYOR, "worker", "start", "--pool", pool, "--name", "w"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = str(api.post(f"/deployments/{deployment['id']}/create_flow_run")["id"])
        run = api.wait_for(run_id, "PAUSED", "COMPLETED", "FAILED", "CRASHED", timeout=60)
        assert run["state_name"] == "Suspended"
        time.sleep(3)  # the process exits and the worker reports on it
        assert api.run(run_id)["state_name"] == "Suspended"  # not Crashed

        resumed = api.post(f"/flow_runs/{run_id}/resume", {"run_input": {"rows": 7}})
        assert (resumed["state"]["type"], resumed["state"]["name"]) == ("SCHEDULED", "Resumed")
        run = api.wait_for(run_id, "COMPLETED", "FAILED", "CRASHED", timeout=60)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = worker.communicate(timeout=30)
        finally:
            if worker.poll() is None:
                worker.kill()
    assert run["state_type"] == "COMPLETED", stderr
    assert api.history(run_id) == [
        ("SCHEDULED", "Scheduled"),
        ("PENDING", "Pending"),
        ("RUNNING", "Running"),
        ("PAUSED", "Suspended"),
        ("SCHEDULED", "Resumed"),
        ("PENDING", "Pending"),
        ("RUNNING", "Running"),
        ("COMPLETED", "Completed"),
    ]
    # The work before the suspension ran twice (no caching); the input reached the second.
    assert stdout.count("preparing") == 2
    assert stdout.count("got input 7") == 1
    assert f"Flow run {run_id} is suspended" in stderr
    assert "Crashed" not in stderr
