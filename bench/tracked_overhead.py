"""Engine overhead while recording to a running server on SQLite; prints one JSON line.

    python bench/tracked_overhead.py [--repeat 3]

Starts ``conveyor server start`` on a free loopback port with a fresh CONVEYOR_HOME, then
runs, in a separate process pointed at it: an empty flow, 1,000 sequential tasks and
10,000 mapped tasks. Afterwards it checks through the API that every task run, every
task-run state and every log line arrived, and fails loudly if any did not.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _server import call, running_server

WORKLOAD = r"""
import json, sys, time
from conveyor import flow, task, get_run_logger

@task
def noop(x: int) -> int:
    return x

@flow
def empty() -> None:
    return None

@flow
def sequential(n: int) -> None:
    get_run_logger().info("sequential %d", n)
    for i in range(n):
        noop(i)

@flow
def mapped(n: int) -> None:
    get_run_logger().info("mapped %d", n)
    noop.map(range(n)).wait()

repeat = int(sys.argv[1])
empty()  # warm-up: imports, logging, the HTTP connection
out = {"empty": [], "sequential": [], "mapped": []}
for _ in range(repeat):
    t = time.perf_counter(); empty(); out["empty"].append(time.perf_counter() - t)
    t = time.perf_counter(); sequential(1000); out["sequential"].append(time.perf_counter() - t)
    t = time.perf_counter(); mapped(10000); out["mapped"].append(time.perf_counter() - t)
print(json.dumps(out))
"""


def _verify(api: str, repeat: int) -> dict[str, int]:
    """Every task run, state and log line the workload made must be in the database."""
    runs = call(f"{api}/flow_runs/filter", {"limit": 200})
    assert isinstance(runs, list)
    counts = {"flow_runs": len(runs), "task_runs": 0, "logs": 0}
    expected_tasks = {"sequential": 1000, "mapped": 10000}
    for run in runs:
        assert run["state_type"] == "COMPLETED", run
        want = expected_tasks.get(run["flow_name"], 0)
        seen = 0
        offset = 0
        while True:
            page = call(
                f"{api}/task_runs/filter",
                {"flow_run_id": [run["id"]], "limit": 200, "offset": offset},
            )
            assert isinstance(page, list)
            for task_run in page:
                assert task_run["state_type"] == "COMPLETED", task_run
            seen += len(page)
            if len(page) < 200:
                break
            offset += 200
        assert seen == want, f"{run['flow_name']}: {seen} task runs recorded, expected {want}"
        counts["task_runs"] += seen
        logs = call(f"{api}/logs/filter", {"flow_run_id": run["id"], "limit": 1000})
        assert isinstance(logs, list) and len(logs) >= 2, f"missing logs for {run['name']}"
        counts["logs"] += len(logs)
    assert counts["flow_runs"] == 1 + 3 * repeat, counts
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    env = {**os.environ, "CONVEYOR_HOME": str(home), "CONVEYOR_LOGGING_LEVEL": "WARNING"}
    env.pop("CONVEYOR_DATABASE_URL", None)
    env.pop("CONVEYOR_BACKEND", None)
    with running_server(env) as api:
        done = subprocess.run(
            [sys.executable, "-c", WORKLOAD, str(args.repeat)],
            env={**env, "CONVEYOR_API_URL": api},
            capture_output=True,
            text=True,
            check=True,
        )
        times = json.loads(done.stdout.strip().splitlines()[-1])
        counts = _verify(api, args.repeat)
    print(
        json.dumps(
            {
                "benchmark": "tracked_overhead",
                "backend": "server+sqlite",
                "empty_flow_ms": round(statistics.median(times["empty"]) * 1000, 2),
                "sequential_us_per_task": round(statistics.median(times["sequential"]) * 1e3, 1),
                "mapped_us_per_task": round(statistics.median(times["mapped"]) * 1e2, 1),
                "verified": counts,
            }
        )
    )


if __name__ == "__main__":
    main()
