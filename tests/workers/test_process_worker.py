"""End to end: a real server, a real ``conveyor worker start``, runs in real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.real_server import CONVEYOR, running_server

FLOWS = """
import os, subprocess, sys, time
from conveyor import flow, get_run_context, task

@task
def double(x: int) -> int:
    return 2 * x

@flow
def doubler(n: int = 1) -> int:
    print("doubling", n, "in", os.getcwd(), "stage", os.environ.get("STAGE"), flush=True)
    return double(n)

@flow
def marks() -> None:
    # Fails if this run ever executed before: the mark is created exclusively.
    run_id = get_run_context().flow_run.id
    path = os.path.join(os.environ["MARK_DIR"], str(run_id))
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))

@flow
def dies() -> None:
    print("about to die", file=sys.stderr, flush=True)
    os.kill(os.getpid(), 9)

@flow
def naps() -> str:
    time.sleep(2)
    return "rested"

@flow
def sleeps() -> None:
    # A grandchild in the run's process group: cancelling must stop it too.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    print("child", child.pid, flush=True)
    with open(os.environ["PID_FILE"], "w") as f:
        f.write(str(child.pid))
    while True:
        time.sleep(0.2)
"""


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    return {**env, "CONVEYOR_HOME": str(home), "CONVEYOR_LOGGING_LEVEL": "INFO", **extra}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("server-home")
    with running_server(_env(home, CONVEYOR_SERVER_SERVICES_ENABLED="false")) as url:
        yield url


@pytest.fixture
def code(tmp_path: Path) -> Path:
    directory = tmp_path / "code"
    directory.mkdir()
    (directory / "flows.py").write_text(FLOWS)
    return directory


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

    def deploy(self, pool: str, flow: str, code: Path, **fields: Any) -> str:
        body = {
            "flow_name": flow,
            "name": "d",
            "entrypoint": f"flows.py:{flow}",
            "source": {"kind": "local", "path": str(code)},
            "work_pool_name": pool,
            **fields,
        }
        return str(self.post("/deployments/", body)["id"])

    def create_run(self, deployment_id: str, **fields: Any) -> str:
        return str(self.post(f"/deployments/{deployment_id}/create_flow_run", fields)["id"])

    def wait_for(self, run_id: str, *types: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if run["state_type"] in types:
                return run
            assert time.monotonic() < deadline, f"run is {run['state_name']}, not {types}"
            time.sleep(0.1)


@pytest.fixture
def api(server: str) -> Api:
    return Api(server)


@pytest.fixture
def pool(api: Api) -> str:
    name = f"pool-{uuid.uuid4().hex[:8]}"
    api.post("/work_pools/", {"name": name})
    return name


def _start_worker(
    server: str, home: Path, pool: str, *args: str, **env: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CONVEYOR, "worker", "start", "--pool", pool, "--name", f"w-{pool}", *args],
        env=_env(home, CONVEYOR_API_URL=server, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(worker: subprocess.Popen[str]) -> tuple[str, str]:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    try:
        return worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()


@pytest.mark.timeout(90)
def test_a_worker_runs_a_deployment_run_to_completion(
    server: str, api: Api, pool: str, code: Path, tmp_path: Path
) -> None:
    deployment_id = api.deploy(pool, "doubler", code, job_variables={"env": {"STAGE": "test"}})
    worker = _start_worker(server, tmp_path, pool)
    try:
        run_id = api.create_run(deployment_id, parameters={"n": 21})
        run = api.wait_for(run_id, "COMPLETED", "FAILED", "CRASHED", timeout=30)
    finally:
        stdout, stderr = _stop(worker)
    assert run["state_type"] == "COMPLETED", stderr
    states = api.http.get(f"/flow_runs/{run_id}/states").json()
    assert [s["type"] for s in states] == ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]
    tasks = api.post("/task_runs/filter", {"flow_run_id": [run_id]})
    assert [t["state_type"] for t in tasks] == ["COMPLETED"]
    assert "doubling 21 in" in stdout and "stage test" in stdout  # streamed, env applied
    assert worker.returncode == 0, stderr
    assert "stopped: asked to stop" in stderr


@pytest.mark.timeout(90)
def test_a_process_that_dies_makes_its_run_crashed_with_its_stderr(
    server: str, api: Api, pool: str, code: Path, tmp_path: Path
) -> None:
    deployment_id = api.deploy(pool, "dies", code)
    worker = _start_worker(server, tmp_path, pool)
    try:
        run_id = api.create_run(deployment_id)
        run = api.wait_for(run_id, "COMPLETED", "FAILED", "CRASHED", timeout=30)
    finally:
        _, stderr = _stop(worker)
    assert run["state_type"] == "CRASHED", stderr
    message = api.http.get(f"/flow_runs/{run_id}/states").json()[-1]["message"]
    assert "was killed by SIGKILL" in message
    assert "about to die" in message


@pytest.mark.timeout(90)
def test_cancelling_a_run_kills_its_process_group(
    server: str, api: Api, pool: str, code: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    variables = {"env": {"PID_FILE": str(pid_file)}}
    deployment_id = api.deploy(pool, "sleeps", code, job_variables=variables)
    worker = _start_worker(server, tmp_path, pool, CONVEYOR_WORKER_CANCEL_GRACE_SECONDS="2")
    try:
        run_id = api.create_run(deployment_id)
        api.wait_for(run_id, "RUNNING", timeout=30)
        deadline = time.monotonic() + 10
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert api.post(f"/flow_runs/{run_id}/cancel")["state"]["type"] == "CANCELLING"
        run = api.wait_for(run_id, "CANCELLED", "CRASHED", timeout=20)
    finally:
        _, stderr = _stop(worker)
    assert run["state_type"] == "CANCELLED", stderr
    assert _gone(child)  # the grandchild went with the group


def _gone(pid: int) -> bool:
    """Exited (or a zombie: in a container nobody may reap an orphan)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if status.rsplit(")", 1)[1].split()[0] == "Z":
            return True
        time.sleep(0.05)
    return False


@pytest.mark.timeout(60)
def test_sigterm_stops_an_idle_worker_cleanly(server: str, pool: str, tmp_path: Path) -> None:
    worker = _start_worker(server, tmp_path, pool)
    time.sleep(1.5)  # polling
    started = time.monotonic()
    _, stderr = _stop(worker)
    assert worker.returncode == 0, stderr
    assert time.monotonic() - started < 10
    assert f"Worker w-{pool} stopped: asked to stop." in stderr


@pytest.mark.timeout(90)
def test_sigterm_waits_for_the_run_in_progress_and_a_second_kills(
    server: str, api: Api, pool: str, code: Path, tmp_path: Path
) -> None:
    naps = api.deploy(pool, "naps", code)
    worker = _start_worker(server, tmp_path, pool)
    try:
        run_id = api.create_run(naps)
        api.wait_for(run_id, "RUNNING", timeout=30)
        worker.send_signal(signal.SIGTERM)
        assert api.wait_for(run_id, "COMPLETED", "CRASHED")["state_type"] == "COMPLETED"
    finally:
        _, stderr = _stop(worker)
    assert worker.returncode == 0, stderr

    pid_file = tmp_path / "child.pid"
    sleeps = api.deploy(pool, "sleeps", code, job_variables={"env": {"PID_FILE": str(pid_file)}})
    worker = _start_worker(server, tmp_path, pool)
    try:
        run_id = api.create_run(sleeps)
        api.wait_for(run_id, "RUNNING", timeout=30)
        worker.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        worker.send_signal(signal.SIGTERM)
        run = api.wait_for(run_id, "CRASHED", "CANCELLED", "COMPLETED", timeout=20)
        _, stderr = worker.communicate(timeout=30)
    finally:
        _stop(worker)
    assert run["state_type"] == "CRASHED", stderr
    message = api.http.get(f"/flow_runs/{run_id}/states").json()[-1]["message"]
    assert "SIGKILL (the worker was told to kill it)" in message
    assert worker.returncode == 0, stderr


def test_an_unknown_pool_stops_the_worker_with_the_reason(server: str, tmp_path: Path) -> None:
    worker = _start_worker(server, tmp_path, "no-such-pool")
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 1
    assert "No work pool named 'no-such-pool'" in stderr


@pytest.mark.timeout(300)
def test_four_workers_run_two_hundred_runs_each_exactly_once(
    server: str, api: Api, pool: str, code: Path, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    deployment_id = api.deploy(pool, "marks", code)
    run_ids = [api.create_run(deployment_id) for _ in range(200)]
    workers = [
        subprocess.Popen(
            [CONVEYOR, "worker", "start", "--pool", pool, "--name", f"w{i}", "--limit", "4"],
            env=_env(
                tmp_path,
                CONVEYOR_API_URL=server,
                CONVEYOR_LOGGING_LEVEL="WARNING",
                MARK_DIR=str(marks),
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    try:
        runs = [
            api.wait_for(run_id, "COMPLETED", "FAILED", "CRASHED", timeout=240)
            for run_id in run_ids
        ]
    finally:
        for worker in workers:
            _stop(worker)
    assert {run["state_type"] for run in runs} == {"COMPLETED"}
    # Each run executed once: one mark each, and no second Pending or Running in its history.
    assert sorted(p.name for p in marks.iterdir()) == sorted(run_ids)
    claimed_by = set()
    for run_id in run_ids:
        states = api.http.get(f"/flow_runs/{run_id}/states").json()
        assert [s["type"] for s in states] == ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]
        claimed_by.add(states[1]["message"])  # "Claimed by worker 'w2'."
    workers_seen = api.post(f"/work_pools/{pool}/workers/filter")
    assert {w["name"] for w in workers_seen} == {"w0", "w1", "w2", "w3"}
    assert len(claimed_by) > 1, "one worker took every run: the test shows nothing about racing"
