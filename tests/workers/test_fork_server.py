"""End to end: the process worker's fork server, with a real server, worker and processes.

Each flow says which process started it (its parent's command line), so a test can tell
a forked run from a subprocess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.real_server import CONVEYOR, running_server

FORK_SERVER = "conveyor.workers.forkserver"

FLOWS = """
import os, subprocess, sys, time
from conveyor import flow

def parent() -> str:
    with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
        return f.read().replace(b"\\0", b" ").decode()

@flow
def whoami() -> None:
    import helper  # from the job's PYTHONPATH
    print("parent:", parent(), flush=True)
    print("cwd:", os.getcwd(), "stage:", os.environ.get("STAGE"), flush=True)
    print("helper:", helper.VALUE, "cwd on sys.path:", os.getcwd() in sys.path, flush=True)
    print("run id gone:", "CONVEYOR_FLOW_RUN_ID" not in os.environ, flush=True)
    print("to stderr", file=sys.stderr, flush=True)

@flow
def plain() -> None:
    print("parent:", parent(), flush=True)

@flow
def dies() -> None:
    print("parent:", parent(), flush=True)
    print("about to die", file=sys.stderr, flush=True)
    os.kill(os.getpid(), 9)

@flow
def naps() -> str:
    time.sleep(3)
    return "rested"

@flow
def sleeps() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    with open(os.environ["PID_FILE"], "w") as f:
        f.write(f"{child.pid} {parent()}")
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


class Api:
    def __init__(self, url: str, code: Path) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)
        self.code = code
        self.pool = f"pool-{uuid.uuid4().hex[:8]}"
        self.post("/work_pools/", {"name": self.pool})

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.post(path, json=body or {})
        assert response.status_code < 300, response.text
        return response.json()

    def run(self, flow: str, **job_variables: Any) -> str:
        """Deploy ``flow`` with these job variables and create a run of it."""
        deployment = {
            "flow_name": flow,
            "name": f"d-{uuid.uuid4().hex[:6]}",
            "entrypoint": f"flows.py:{flow}",
            "source": {"kind": "local", "path": str(self.code)},
            "work_pool_name": self.pool,
            "job_variables": job_variables,
        }
        deployment_id = self.post("/deployments/", deployment)["id"]
        return str(self.post(f"/deployments/{deployment_id}/create_flow_run")["id"])

    def wait_for(self, run_id: str, *types: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run: dict[str, Any] = self.http.get(f"/flow_runs/{run_id}").json()
            if run["state_type"] in types:
                return run
            assert time.monotonic() < deadline, f"run is {run['state_name']}, not {types}"
            time.sleep(0.1)

    def last_message(self, run_id: str) -> str:
        message: str = self.http.get(f"/flow_runs/{run_id}/states").json()[-1]["message"]
        return message


@pytest.fixture
def api(server: str, tmp_path: Path) -> Api:
    code = tmp_path / "code"
    code.mkdir()
    (code / "flows.py").write_text(FLOWS)
    return Api(server, code)


def _start_worker(server: str, home: Path, api: Api, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CONVEYOR, "worker", "start", "--pool", api.pool, "--cancel-grace-seconds", "2"],
        env=_env(home, CONVEYOR_API_URL=server, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _pythonpath(directory: Path) -> str:
    """``directory`` first, then the PYTHONPATH the tests run with."""
    return os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))


def _stop(worker: subprocess.Popen[str]) -> tuple[str, str]:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    try:
        return worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()


def _fork_server_of(worker: subprocess.Popen[str], timeout: float = 30) -> int:
    """The pid of the worker's fork server, once it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes()
            except (OSError, IndexError):
                continue
            if ppid == worker.pid and FORK_SERVER.encode() in command:
                return int(entry.name)
        time.sleep(0.1)
    raise AssertionError("the worker started no fork server")


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


@pytest.mark.timeout(90)
def test_a_forked_run_gets_the_jobs_env_cwd_and_pythonpath_and_its_output_is_streamed(
    server: str, api: Api, tmp_path: Path
) -> None:
    lib, workdir = tmp_path / "lib", tmp_path / "workdir"
    lib.mkdir()
    workdir.mkdir()
    (lib / "helper.py").write_text("VALUE = 'from the job pythonpath'\n")
    env = {"STAGE": "forked", "PYTHONPATH": _pythonpath(lib)}
    worker = _start_worker(server, tmp_path, api)
    try:
        run_id = api.run("whoami", env=env, working_dir=str(workdir))
        run = api.wait_for(run_id, "COMPLETED", "FAILED", "CRASHED")
    finally:
        stdout, stderr = _stop(worker)
    assert run["state_type"] == "COMPLETED", stderr
    assert f"parent: {sys.executable} -m {FORK_SERVER}" in stdout
    assert f"cwd: {workdir} stage: forked" in stdout
    assert "helper: from the job pythonpath cwd on sys.path: True" in stdout
    assert "run id gone: True" in stdout
    assert "to stderr" in stderr
    assert worker.returncode == 0, stderr


@pytest.mark.timeout(90)
def test_a_forked_run_killed_by_sigkill_is_crashed_with_its_stderr(
    server: str, api: Api, tmp_path: Path
) -> None:
    worker = _start_worker(server, tmp_path, api)
    try:
        run_id = api.run("dies")
        run = api.wait_for(run_id, "COMPLETED", "FAILED", "CRASHED")
    finally:
        stdout, stderr = _stop(worker)
    assert run["state_type"] == "CRASHED", stderr
    assert FORK_SERVER in stdout
    message = api.last_message(run_id)
    assert "was killed by SIGKILL" in message
    assert "about to die" in message


@pytest.mark.timeout(90)
def test_cancelling_a_forked_run_kills_its_process_group(
    server: str, api: Api, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    worker = _start_worker(server, tmp_path, api)
    try:
        run_id = api.run("sleeps", env={"PID_FILE": str(pid_file)})
        api.wait_for(run_id, "RUNNING")
        deadline = time.monotonic() + 10
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child, parent = pid_file.read_text().split(" ", 1)
        assert api.post(f"/flow_runs/{run_id}/cancel")["state"]["type"] == "CANCELLING"
        run = api.wait_for(run_id, "CANCELLED", "CRASHED", timeout=20)
    finally:
        _, stderr = _stop(worker)
    assert FORK_SERVER in parent
    assert run["state_type"] == "CANCELLED", stderr
    assert _gone(int(child))  # the flow's own child went with the group


@pytest.mark.timeout(120)
def test_runs_carry_on_and_complete_when_the_fork_server_dies(
    server: str, api: Api, tmp_path: Path
) -> None:
    worker = _start_worker(server, tmp_path, api)
    try:
        first = _fork_server_of(worker)
        napping = api.run("naps")
        api.wait_for(napping, "RUNNING")
        os.kill(first, signal.SIGKILL)
        # The run it forked carries on; the worker still sees it end.
        assert api.wait_for(napping, "COMPLETED", "CRASHED")["state_type"] == "COMPLETED"
        later = api.run("plain")
        run = api.wait_for(later, "COMPLETED", "FAILED", "CRASHED")
        second = _fork_server_of(worker)
    finally:
        stdout, stderr = _stop(worker)
    assert run["state_type"] == "COMPLETED", stderr
    assert second != first
    assert f"The fork server (pid {first}) died; starting another." in stderr
    assert f"parent: {sys.executable} -m {FORK_SERVER}" in stdout
    assert worker.returncode == 0, stderr
    assert _gone(second)  # stopped with the worker


@pytest.mark.timeout(90)
def test_without_a_fork_server_runs_start_as_subprocesses(
    server: str, api: Api, tmp_path: Path
) -> None:
    # A sitecustomize that kills the fork server at start-up, and nothing else.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        f"import os, sys\nif {FORK_SERVER!r} in sys.orig_argv:\n    os._exit(3)\n"
    )
    worker = _start_worker(server, tmp_path, api, PYTHONPATH=_pythonpath(site))
    try:
        run_id = api.run("plain")
        run = api.wait_for(run_id, "COMPLETED", "FAILED", "CRASHED")
    finally:
        stdout, stderr = _stop(worker)
    assert run["state_type"] == "COMPLETED", stderr
    assert "The fork server exited or hung while starting" in stderr
    assert f"parent: {sys.executable} {CONVEYOR} worker start" in stdout
    assert worker.returncode == 0, stderr


@pytest.mark.timeout(90)
def test_custom_commands_and_other_interpreter_settings_use_a_subprocess(
    server: str, api: Api, tmp_path: Path
) -> None:
    command = f"{sys.executable} -m conveyor.workers.execute flows.py:plain {api.code}"
    worker = _start_worker(server, tmp_path, api)
    try:
        custom = api.run("plain", command=command)
        hashed = api.run("plain", env={"PYTHONHASHSEED": "7"})
        runs = [api.wait_for(r, "COMPLETED", "FAILED", "CRASHED") for r in (custom, hashed)]
    finally:
        stdout, stderr = _stop(worker)
    assert [r["state_type"] for r in runs] == ["COMPLETED", "COMPLETED"], stderr
    assert stdout.count(f"parent: {sys.executable} {CONVEYOR} worker start") == 2, stdout
    assert FORK_SERVER not in stdout
