"""``conveyor flow-run cancel``: a flow running in another process stops and ends Cancelled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FLOW = """
import sys, time
from conveyor import flow, task
from conveyor.engine.context import get_run_context

@task
def step(i: int) -> int:
    time.sleep(0.01)
    return i

@flow
def endless() -> None:
    print(get_run_context().flow_run.id, flush=True)
    for i in range(100_000):
        step(i)

endless()
"""

CONVEYOR = str(Path(sys.executable).parent / "conveyor")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    return {**env, "CONVEYOR_HOME": str(home), "CONVEYOR_LOGGING_LEVEL": "WARNING"}


def _conveyor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CONVEYOR, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.timeout(120)
def test_cancel_stops_a_running_flow_and_it_ends_cancelled(tmp_path: Path) -> None:
    env = _env(tmp_path / "home")
    flow = subprocess.Popen(
        [sys.executable, "-c", FLOW],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert flow.stdout is not None
        run_id = flow.stdout.readline().strip()
        assert run_id, flow.communicate(timeout=30)
        cancel = _conveyor(env, "flow-run", "cancel", run_id)
        assert cancel.returncode == 0, cancel.stderr
        assert "Cancelling flow run" in cancel.stdout
        _, stderr = flow.communicate(timeout=60)
    finally:
        if flow.poll() is None:
            flow.kill()
    assert flow.returncode != 0
    assert "CancelledRun" in stderr
    inspect = _conveyor(env, "flow-run", "inspect", run_id)
    assert inspect.returncode == 0, inspect.stderr
    assert "Cancelling" in inspect.stdout and "Cancelled" in inspect.stdout

    again = _conveyor(env, "flow-run", "cancel", run_id)
    assert again.returncode == 1
    assert "was not cancelled" in again.stderr and "already Cancelled" in again.stderr


def test_cancel_refuses_a_bad_id(tmp_path: Path) -> None:
    result = _conveyor(_env(tmp_path / "home"), "flow-run", "cancel", "not-an-id")
    assert result.returncode == 1
    assert "is not a flow run id" in result.stderr
