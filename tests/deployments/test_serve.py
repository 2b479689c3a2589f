"""End to end: ``flow.serve()`` in its own process against a real server; a run made by
``conveyor deployment run`` completes, and SIGTERM stops the serving process cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.real_server import CONVEYOR, running_server

SERVED = """
from conveyor import flow

@flow
def hello(n: int = 1) -> int:
    print("hello", n, flush=True)
    return 2 * n

if __name__ == "__main__":
    hello.serve("svc", limit=2)
"""


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env = {**base, "CONVEYOR_HOME": str(tmp_path / "home")}
    with running_server({**env, "CONVEYOR_SERVER_SERVICES_ENABLED": "false"}) as url:
        yield {**env, "CONVEYOR_API_URL": url}


def test_a_served_flow_runs_its_deployment_runs(env: dict[str, str], tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "hello.py").write_text(SERVED)
    served = subprocess.Popen(
        [sys.executable, "hello.py"],
        cwd=code,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        api = env["CONVEYOR_API_URL"]
        while httpx.get(f"{api}/deployments/name/hello/svc", timeout=5).status_code != 200:
            assert served.poll() is None, served.communicate()[0]
            assert time.monotonic() < deadline, "the deployment was not made"
            time.sleep(0.2)
        deployment = httpx.get(f"{api}/deployments/name/hello/svc", timeout=5).json()
        assert deployment["work_pool_name"] is None
        assert deployment["entrypoint"] == "hello.py:hello"
        done = subprocess.run(
            [CONVEYOR, "deployment", "run", "hello/svc", "-p", "n=4", "--watch"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Completed" in done.stdout
    finally:
        served.send_signal(signal.SIGTERM)
        output, _ = served.communicate(timeout=30)
    assert served.returncode == 0, output
    assert "Serving hello/svc" in output and "hello 4" in output
