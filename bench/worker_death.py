"""How long a run whose worker died stays Running; prints one JSON line.

    python bench/worker_death.py

Starts ``conveyor server start`` (default settings: a run is Crashed after 25 s without
a heartbeat, and the reaper looks every 5 s) and one process worker, runs a deployment
of a flow that sleeps, and once it has run for a few seconds kills the worker and the
run's process group with SIGKILL, as when their machine goes. Reports the seconds from
the kill until the run's history shows CRASHED.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _server import call, running_server

FLOW = """
import os, time
from conveyor import flow

@flow
def sleepy() -> None:
    with open(os.environ["MARKER"], "w") as f:
        f.write(str(os.getpid()))
    time.sleep(600)
"""


def _until(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {seconds:.0f} s")
        time.sleep(0.1)


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    code, marker = home / "code", home / "marker"
    code.mkdir()
    (code / "flows.py").write_text(FLOW)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(CONVEYOR_HOME=str(home), CONVEYOR_LOGGING_LEVEL="WARNING")
    with running_server(env) as api:
        call(f"{api}/work_pools/", {"name": "bench", "type": "process"})
        deployment = call(
            f"{api}/deployments/",
            {
                "flow_name": "sleepy",
                "name": "bench",
                "entrypoint": "flows.py:sleepy",
                "source": {"kind": "local", "path": str(code)},
                "work_pool_name": "bench",
                "job_variables": {"env": {"MARKER": str(marker)}},
            },
        )
        run = call(f"{api}/deployments/{deployment['id']}/create_flow_run", {})
        conveyor = str(Path(sys.executable).parent / "conveyor")
        worker = subprocess.Popen(
            [conveyor, "worker", "start", "--pool", "bench"],
            env={**env, "CONVEYOR_API_URL": api},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _until(lambda: marker.exists() and marker.read_text(), 60, "the run's start")
            time.sleep(3)  # running, heartbeating
            worker.kill()
            os.killpg(int(marker.read_text()), signal.SIGKILL)
            killed = time.monotonic()

            def crashed() -> bool:
                states = call(f"{api}/flow_runs/{run['id']}/states")
                return any(state["type"] == "CRASHED" for state in states)

            _until(crashed, 120, "CRASHED")
            elapsed = time.monotonic() - killed
        finally:
            worker.kill()
            worker.wait(timeout=30)
    print(json.dumps({"benchmark": "worker_death", "kill9_to_crashed_s": round(elapsed, 1)}))


if __name__ == "__main__":
    main()
