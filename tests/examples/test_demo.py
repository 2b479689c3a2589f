"""``make run``: examples/demo.py starts a real server and a real process worker, deploys
examples/conveyor.yaml, runs everything, and leaves nothing running behind it.

Each test runs the demo in ``--once`` mode as a subprocess, over a temporary
CONVEYOR_HOME and a free port, then reads what it recorded through the API (the same
application, over the home's database).
"""

from __future__ import annotations

import asyncio
import datetime
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from conveyor.client.api import ConveyorClient
from conveyor.client.embedded import embedded_client
from conveyor.schemas.api import FlowRunFilter, FlowRunRead
from conveyor.schemas.deployments import DeploymentFilter, DeploymentRead
from conveyor.schemas.states import StateType
from conveyor.settings import Settings

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo.py"
DEPLOYMENTS = {"etl/demo", "hello/demo", "primes/demo", "report/every-minute"}
IN_PROCESS = {
    "hello",
    "etl",
    "report",
    *(f"primes-on-{r}" for r in ("sequential", "threads", "processes", "dask")),
}

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="follows processes in /proc")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _descendants(pid: int) -> dict[int, str]:
    """Every living descendant of ``pid``: pid -> its start time (against pid reuse)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            fields = _stat(child)
            if child not in found and fields is not None:
                found[child] = fields[19]
                todo.append(child)
    return found


def _alive(pid: int, started: str) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[19] == started and fields[0] != "Z"


@dataclass
class DemoRun:
    returncode: int
    output: str
    leftovers: list[int]
    """Processes the demo started that outlived it (killed by the test)."""
    interrupted: bool
    """Whether the test pressed Ctrl-C (sent SIGINT) as asked."""


def run_demo(
    home: Path, port: int, *options: str, interrupt_on: str | None = None, timeout: float = 100
) -> DemoRun:
    """Run the demo (``--once``, unless ``interrupt_on``: then without, and Ctrl-C once its
    output shows that text) to its end, following every process it starts; whatever
    happens, no process of it survives the call."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(COLUMNS="200", PYTHONIOENCODING="utf-8")
    argv = [sys.executable, str(DEMO), "--home", str(home), "--port", str(port), *options]
    if interrupt_on is None:
        argv.append("--once")
    output = home.parent / f"demo-{port}.out"
    seen: dict[int, str] = {}
    interrupted = False
    with output.open("wb") as out:
        demo = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while demo.poll() is None and time.monotonic() < deadline:
                seen.update(_descendants(demo.pid))
                if interrupt_on is not None and interrupt_on in output.read_text("utf-8"):
                    time.sleep(2)  # watching the runs now
                    demo.send_signal(signal.SIGINT)
                    interrupt_on, interrupted = None, True
                time.sleep(0.2)
        finally:
            if demo.poll() is None:
                demo.send_signal(signal.SIGTERM)  # the demo stops what it started
                try:
                    demo.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    demo.kill()
                    demo.wait()
            leftovers = [pid for pid, started in seen.items() if _alive(pid, started)]
            for pid in leftovers:
                os.kill(pid, signal.SIGKILL)
    return DemoRun(demo.returncode, output.read_text(encoding="utf-8"), leftovers, interrupted)


def through_api(home: Path, action: Callable[[ConveyorClient], Awaitable[T]]) -> T:
    async def run() -> T:
        client = await embedded_client(Settings(home=home))
        try:
            return await action(client)
        finally:
            await client.aclose()

    return asyncio.run(run())


async def _deployments(client: ConveyorClient) -> dict[str, DeploymentRead]:
    rows = await client.filter_deployments(DeploymentFilter(limit=200))
    return {f"{row.flow_name}/{row.name}": row for row in rows}


async def _runs(client: ConveyorClient) -> list[FlowRunRead]:
    runs: list[FlowRunRead] = []
    while page := await client.filter_flow_runs(FlowRunFilter(limit=200, offset=len(runs))):
        runs += page
    return runs


def _port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_demo_runs_every_deployment_and_example_against_a_server_and_worker(
    tmp_path: Path,
) -> None:
    home, port = tmp_path / "home", free_port()
    demo = run_demo(home, port, "--schedule-seconds", "5", "--keep-schedule")
    assert demo.returncode == 0, demo.output
    assert "Every run completed" in demo.output
    assert demo.leftovers == [], demo.output
    assert _port_is_closed(port)

    deployments = through_api(home, _deployments)
    assert set(deployments) == DEPLOYMENTS
    assert all(d.work_pool_name == "demo" for d in deployments.values())
    assert deployments["hello/demo"].parameters == {"count": 8}
    runs = through_api(home, _runs)
    top = [r for r in runs if r.parent_flow_run_id is None]
    for name, deployment in deployments.items():
        made = [r for r in top if r.deployment_id == deployment.id and not r.auto_scheduled]
        assert [r.state_type for r in made] == [StateType.COMPLETED], name
    # The scheduler made the scheduled deployment's runs; the worker ran one of them, and
    # (with --keep-schedule) the next ones are still there.
    report = deployments["report/every-minute"]
    by_schedule = [r for r in top if r.deployment_id == report.id and r.auto_scheduled]
    assert StateType.COMPLETED in {r.state_type for r in by_schedule}
    assert StateType.SCHEDULED in {r.state_type for r in by_schedule}
    assert not report.paused
    # The report's subflows ran under it; the in-process examples recorded to the server.
    assert any(r.flow_name == "check-service" and r.parent_flow_run_id for r in runs)
    in_process = {r.flow_name: r.state_type for r in top if r.deployment_id is None}
    assert in_process == dict.fromkeys(IN_PROCESS, StateType.COMPLETED)
    artifact = through_api(home, lambda client: client.read_latest_artifact("health-report"))
    assert artifact.flow_run_id is not None
    assert (home / "demo" / "server.log").is_file() and (home / "demo" / "worker.log").is_file()


@pytest.mark.timeout(240)  # two demos, ~30 s each on a quiet machine
def test_running_the_demo_twice_changes_and_duplicates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = run_demo(home, free_port(), "--schedule-seconds", "5")
    assert first.returncode == 0, first.output
    ids = {name: d.id for name, d in through_api(home, _deployments).items()}

    second = run_demo(home, free_port(), "--schedule-seconds", "5")
    assert second.returncode == 0, second.output
    assert "work-pool create" in first.output and "work-pool create" not in second.output
    assert second.leftovers == []

    deployments = through_api(home, _deployments)
    assert {name: d.id for name, d in deployments.items()} == ids  # replaced in place
    pools = through_api(home, lambda client: client.filter_work_pools())
    assert [pool.name for pool in pools] == ["demo"]
    workers = through_api(home, lambda client: client.filter_workers("demo"))
    assert [worker.name for worker in workers] == ["demo-worker"]
    runs = [r for r in through_api(home, _runs) if r.parent_flow_run_id is None]
    hello = [r for r in runs if r.deployment_id == ids["hello/demo"]]
    assert [r.state_type for r in hello] == [StateType.COMPLETED] * 2  # one per round
    # Each exit paused the every-minute deployment and so dropped its runs to come (one
    # already due may stay, Late); the second start resumed it, and a scheduled run ran in
    # each round.
    report = deployments["report/every-minute"]
    assert report.paused
    by_schedule = [r for r in runs if r.deployment_id == report.id and r.auto_scheduled]
    now = datetime.datetime.now(datetime.timezone.utc)
    assert not [r for r in by_schedule if r.expected_start_time and r.expected_start_time > now]
    assert sum(r.state_type is StateType.COMPLETED for r in by_schedule) >= 2
    assert "Paused report/every-minute" in second.output


def test_ctrl_c_stops_the_worker_and_the_server_without_a_traceback(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    demo = run_demo(home, port, interrupt_on="Conveyor is running at", timeout=60)
    assert demo.interrupted and demo.returncode == 0, demo.output
    assert f"Conveyor is running at http://127.0.0.1:{port}" in demo.output
    assert f"Open the web UI: http://127.0.0.1:{port}/" in demo.output
    assert "flow-run ls" in demo.output and "deployment ls" in demo.output
    assert "Stopping the worker" in demo.output and "Stopping the server" in demo.output
    assert "Traceback" not in demo.output
    assert demo.leftovers == []
    assert _port_is_closed(port)
    worker_log = (home / "demo" / "worker.log").read_text()
    assert "Worker demo-worker stopped: asked to stop." in worker_log
    assert "Traceback" not in (home / "demo" / "server.log").read_text()


def test_a_taken_port_is_one_clear_sentence(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        demo = run_demo(tmp_path / "home", port, timeout=30)
    assert demo.returncode == 1
    assert f"Port {port} is taken by another program; free it, or choose another port" in (
        demo.output
    )
    assert "Traceback" not in demo.output


def test_an_unreachable_api_url_is_one_clear_sentence(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    proc = subprocess.run(
        [sys.executable, str(DEMO), "--once", "--home", str(tmp_path / "home")],
        cwd=ROOT,
        env={**os.environ, "CONVEYOR_API_URL": url, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert f"CONVEYOR_API_URL={url} does not answer; start that server" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
