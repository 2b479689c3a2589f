"""End to end: real processes. A flow run in one process is recorded by a server in another
(`conveyor server start`), or embedded in the flow's own process, and reads back through
the API and the CLI; a server restarted in the middle of a run loses nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.real_server import free_port

CLI = "from conveyor.cli.main import main; main()"

FLOW = textwrap.dedent(
    """
    import itertools, os, sys, time

    from conveyor import flow, get_run_logger, task

    attempts = itertools.count(1)


    @task(retries=2, retry_delay_seconds=0.1)
    def flaky() -> int:
        if next(attempts) == 1:
            raise ConnectionError("the API is flaky today")
        return 3


    @task
    def square(x: int) -> int:
        get_run_logger().info("squaring %d", x)
        return x * x


    @task
    def nap(wake: str) -> str:
        # A line every 0.1s, whether the server is up or not, until woken.
        logger = get_run_logger()
        logger.info("napping")
        tick, deadline = 0, time.monotonic() + 60
        while not os.path.exists(wake) and time.monotonic() < deadline:
            logger.info("tick %d", tick)
            tick += 1
            time.sleep(0.1)
        logger.info("woke up")
        return "rested"


    @task
    def boom() -> None:
        raise ValueError("boom")


    @flow(log_prints=True)
    def pipeline(wake: str = "") -> int:
        n = flaky()
        total = sum(square.map(range(n)).result())
        if wake:
            nap(wake)
        failed = boom(return_state=True)
        print(f"total {total}; boom ended {failed.type.value}")
        return total


    if __name__ == "__main__":
        state = pipeline(wake=sys.argv[1], return_state=True)
        print("FLOW_RUN_ID", state.state_details.flow_run_id, state.type.value, flush=True)
    """
)


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["COLUMNS"] = "250"  # rich tables print whole ids
    env.update(values)
    return env


class Server:
    """`conveyor server start` in a subprocess; start() waits until /api/health answers."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.url = f"http://127.0.0.1:{port}/api"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", CLI, "server", "start", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"the server did not start:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: a crash, with no graceful shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def server_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """The server's environment: its own CONVEYOR_HOME, on the backend under test."""
    return _env(CONVEYOR_HOME=str(tmp_path / "server-home"), CONVEYOR_DATABASE_URL=database_url)


@pytest.fixture
def server(server_env: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    running = Server(server_env, free_port(), tmp_path / "server.log")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _run_flow(tmp_path: Path, env: dict[str, str], wake: str = "") -> subprocess.Popen[str]:
    """The pipeline in its own process; with ``wake``, it naps until that file exists."""
    script = tmp_path / "pipeline.py"
    script.write_text(FLOW)
    return subprocess.Popen(
        [sys.executable, str(script), wake],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(flow: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    out, err = flow.communicate(timeout=timeout)
    assert flow.returncode == 0, err
    for trouble in ("Dropping", "refused", "Could not deliver"):  # records lost or late
        assert trouble not in err, err
    marker = [line.split() for line in out.splitlines() if line.startswith("FLOW_RUN_ID")]
    assert marker, (out, err)
    _, run_id, final = marker[0]
    return run_id, final


def _get(client: httpx.Client, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _assert_pipeline_recorded(api_url: str, run_id: str, wake: str = "") -> None:
    """The flow run, every task run with its state history, and the logs are all there."""
    with httpx.Client(base_url=api_url, timeout=10) as client:
        run = _get(client, f"/flow_runs/{run_id}")
        assert (run["flow_name"], run["state_type"], run["run_count"]) == (
            "pipeline",
            "COMPLETED",
            1,
        )
        assert run["parameters"] == {"wake": wake}
        assert run["start_time"] is not None
        assert run["end_time"] is not None
        flow_states = _get(client, f"/flow_runs/{run_id}/states")
        assert [s["type"] for s in flow_states] == ["RUNNING", "COMPLETED"]

        task_runs = _post(client, "/task_runs/filter", {"flow_run_id": [run_id]})
        by_name = {t["name"]: t for t in task_runs}
        expected = {"flaky-0", "square-0", "square-1", "square-2", "boom-0"}
        if wake:
            expected.add("nap-0")
        assert set(by_name) == expected
        assert sorted(by_name[f"square-{n}"]["map_index"] for n in range(3)) == [0, 1, 2]

        histories = {
            name: [s["name"] for s in _get(client, f"/task_runs/{t['id']}/states")]
            for name, t in by_name.items()
        }
        for name, history in histories.items():
            seqs = [s["seq"] for s in _get(client, f"/task_runs/{by_name[name]['id']}/states")]
            assert seqs == sorted(seqs), name
            assert history[-1] == ("Failed" if name == "boom-0" else "Completed"), (name, history)
            assert "Running" in history, (name, history)
        assert histories["flaky-0"][-3:] == ["AwaitingRetry", "Retrying", "Completed"]
        assert by_name["flaky-0"]["run_count"] == 2
        assert (by_name["boom-0"]["state_type"], by_name["boom-0"]["run_count"]) == ("FAILED", 1)

        messages = [
            line["message"] for line in _post(client, "/logs/filter", {"flow_run_id": run_id})
        ]
        text = "\n".join(messages)
        for expected_line in [
            "squaring 0",
            "squaring 2",
            "total 5; boom ended FAILED",  # a print(), recorded because of log_prints
            "retry 1 of 2",  # the engine's own warning about flaky's first attempt
            "ValueError: boom",
            "Finished in state Completed",
        ]:
            assert expected_line in text, (expected_line, messages)
        if wake:
            # Every line logged while the server was down arrived, none twice.
            ticks = [m for m in messages if m.startswith("tick")]
            assert ticks == [f"tick {n}" for n in range(len(ticks))]
            assert len(ticks) >= 5
            assert messages.index("napping") < messages.index("tick 0")
            assert messages.index(ticks[-1]) < messages.index("woke up")
        task_lines = _post(client, "/logs/filter", {"task_run_id": by_name["square-1"]["id"]})
        assert [line["message"] for line in task_lines] == ["squaring 1"]


@pytest.mark.timeout(120)
def test_a_flow_run_is_recorded_by_a_server_over_http(server: Server, tmp_path: Path) -> None:
    # The flow's own home is elsewhere: nothing may be recorded locally.
    flow_home = tmp_path / "flow-home"
    env = _env(CONVEYOR_HOME=str(flow_home), CONVEYOR_API_URL=server.url)
    run_id, final = _finish(_run_flow(tmp_path, env))
    assert final == "COMPLETED"
    _assert_pipeline_recorded(server.url, run_id)
    assert not (flow_home / "conveyor.db").exists()


@pytest.mark.timeout(120)
def test_a_server_restarted_mid_run_loses_nothing(server: Server, tmp_path: Path) -> None:
    env = _env(CONVEYOR_HOME=str(tmp_path / "flow-home"), CONVEYOR_API_URL=server.url)
    wake = tmp_path / "wake"
    flow = _run_flow(tmp_path, env, wake=str(wake))
    try:
        # Wait until the run is inside its nap, with the first records already delivered.
        deadline = time.monotonic() + 30
        napping = False
        with httpx.Client(base_url=server.url, timeout=5) as client:
            while not napping and time.monotonic() < deadline:
                assert flow.poll() is None, flow.communicate()
                lines = _post(client, "/logs/filter", {"limit": 1000})
                napping = any(line["message"] == "napping" for line in lines)
                time.sleep(0.05)
        assert napping, "the flow never reached its nap"
        server.kill()
        time.sleep(0.5)  # the flow keeps logging at a dead server, and must not notice
        server.start()  # same port, same database
        wake.touch()
        run_id, final = _finish(flow)
    finally:
        if flow.poll() is None:
            flow.kill()
    assert final == "COMPLETED"
    _assert_pipeline_recorded(server.url, run_id, wake=str(wake))


BUSY_FLOW = textwrap.dedent(
    """
    import sys, time

    from conveyor import flow, task


    @task
    def step(n: int) -> int:
        time.sleep(0.001)
        return n


    @flow
    def busy(n: int) -> int:
        return sum(step(i) for i in range(n))


    if __name__ == "__main__":
        state = busy(int(sys.argv[1]), return_state=True)
        print("FLOW_RUN_ID", state.state_details.flow_run_id, state.type.value, flush=True)
    """
)


def _task_runs(client: httpx.Client) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    while True:
        page = _post(client, "/task_runs/filter", {"limit": 200, "offset": len(runs)})
        runs.extend(page)
        if len(page) < 200:
            return runs


@pytest.mark.timeout(120)
def test_a_busy_flow_streaming_its_records_survives_a_server_restart(
    server: Server, tmp_path: Path
) -> None:
    """The flow's thread ships its batches itself; one it cannot deliver while the
    server is down goes to the recorder's thread, which retries; none is lost."""
    count = 3_000
    script = tmp_path / "busy.py"
    script.write_text(BUSY_FLOW)
    env = _env(CONVEYOR_HOME=str(tmp_path / "flow-home"), CONVEYOR_API_URL=server.url)
    flow = subprocess.Popen(
        [sys.executable, str(script), str(count)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=server.url, timeout=5) as client:
            while len(_post(client, "/task_runs/filter", {"limit": 200})) < 200:
                assert flow.poll() is None, flow.communicate()
                assert time.monotonic() < deadline, "no batch arrived"
                time.sleep(0.02)
        server.kill()
        time.sleep(0.5)
        assert flow.poll() is None, "the flow ended before the server came back"
        server.start()
        out, err = flow.communicate(timeout=90)
    finally:
        if flow.poll() is None:
            flow.kill()
    assert flow.returncode == 0, err
    assert "Dropping" not in err
    run_id, final = next(line.split()[1:] for line in out.splitlines() if "FLOW_RUN_ID" in line)
    assert final == "COMPLETED"
    with httpx.Client(base_url=server.url, timeout=10) as client:
        runs = _task_runs(client)
        assert len(runs) == count
        assert {run["flow_run_id"] for run in runs} == {run_id}
        assert {run["state_type"] for run in runs} == {"COMPLETED"}
        assert sorted(int(run["dynamic_key"]) for run in runs) == list(range(count))
        for run in runs[:: count // 10]:
            history = _get(client, f"/task_runs/{run['id']}/states")
            assert [s["type"] for s in history] == ["PENDING", "RUNNING", "COMPLETED"]


def _cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.timeout(120)
def test_the_embedded_default_records_locally_and_the_cli_reads_it(tmp_path: Path) -> None:
    """No API URL: the run goes into CONVEYOR_HOME's SQLite, where the CLI finds it."""
    home = tmp_path / "home"
    env = _env(CONVEYOR_HOME=str(home))
    run_id, final = _finish(_run_flow(tmp_path, env))
    assert final == "COMPLETED"
    assert (home / "conveyor.db").exists()

    commands = {
        "ls": _cli(env, "flow-run", "ls"),
        "inspect": _cli(env, "flow-run", "inspect", run_id),
        "logs": _cli(env, "flow-run", "logs", run_id),
        "tasks": _cli(env, "task-run", "ls", "--flow-run", run_id),
    }
    out: dict[str, str] = {}
    for name, process in commands.items():
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, (name, stderr)
        out[name] = stdout

    assert run_id in out["ls"]
    assert "pipeline" in out["ls"]
    assert "Completed" in out["ls"]
    assert "pipeline" in out["inspect"]
    for state in ("Running", "Completed"):
        assert state in out["inspect"]
    assert "squaring 1" in out["logs"]
    assert "total 5; boom ended FAILED" in out["logs"]
    for task_run in ("flaky-0", "square-0", "square-1", "square-2", "boom-0"):
        assert task_run in out["tasks"]
    assert "Failed" in out["tasks"]
