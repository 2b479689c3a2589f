"""Deployment runs end to end through one process worker; prints one JSON line.

    python bench/e2e_deployments.py [--runs 20]

Starts ``conveyor server start`` on a free loopback port with a fresh CONVEYOR_HOME,
creates a process work pool and a deployment of a trivial flow from a local directory,
starts one ``conveyor worker start --pool bench --limit N`` and, once it is polling,
creates N runs at once through the API. Reports the time until all N are Completed and
the scheduled-to-running latency of each run (its SCHEDULED state's time, or its expected
start when later, to its RUNNING state's time), p50 and p99. Fails loudly unless every
run Completed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _server import call, running_server

FLOW = """
from conveyor import flow

@flow
def noop(n: int = 0) -> int:
    return n
"""
POOL = "bench"


def _time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _wait_for_worker(api: str, worker: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited with code {worker.returncode} during start-up")
        if call(f"{api}/work_pools/{POOL}/workers/filter", {}):
            return
        time.sleep(0.1)
    raise SystemExit("the worker did not register within 60 s")


def _latency_ms(api: str, run: dict[str, Any]) -> float:
    states = call(f"{api}/flow_runs/{run['id']}/states")
    scheduled = next(_time(s["timestamp"]) for s in states if s["type"] == "SCHEDULED")
    running = next(_time(s["timestamp"]) for s in states if s["type"] == "RUNNING")
    if run.get("expected_start_time"):
        scheduled = max(scheduled, _time(run["expected_start_time"]))
    return (running - scheduled).total_seconds() * 1000


def _runs(api: str, deployment_id: str, count: int) -> list[dict[str, Any]]:
    body = {"deployment_id": [deployment_id], "limit": max(count, 1)}
    runs: list[dict[str, Any]] = call(f"{api}/flow_runs/filter", body)
    return runs


def _measure(api: str, code: Path, count: int, env: dict[str, str]) -> dict[str, Any]:
    call(f"{api}/work_pools/", {"name": POOL, "type": "process"})
    deployment = call(
        f"{api}/deployments/",
        {
            "flow_name": "noop",
            "name": "bench",
            "entrypoint": "flows.py:noop",
            "source": {"kind": "local", "path": str(code)},
            "work_pool_name": POOL,
        },
    )
    conveyor = str(Path(sys.executable).parent / "conveyor")
    worker = subprocess.Popen(
        [conveyor, "worker", "start", "--pool", POOL, "--limit", str(count)],
        env={**env, "CONVEYOR_API_URL": api},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_worker(api, worker)
        create = f"{api}/deployments/{deployment['id']}/create_flow_run"
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(count) as pool:
            list(pool.map(lambda i: call(create, {"parameters": {"n": i}}), range(count)))
        deadline = time.monotonic() + 300
        while True:
            runs = _runs(api, deployment["id"], count)
            final = [r for r in runs if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")]
            if len(final) == count:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(final)} of {count} runs ended within 300 s")
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    bad = [(r["name"], r["state_name"]) for r in runs if r["state_type"] != "COMPLETED"]
    if bad:
        raise SystemExit(f"{len(bad)} of {count} runs did not complete: {bad}")
    latencies = sorted(_latency_ms(api, run) for run in runs)
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "benchmark": "e2e_deployments",
        "runs": count,
        "all_completed_s": round(elapsed, 2),
        "scheduled_to_running_p50_ms": round(statistics.median(latencies), 1),
        "scheduled_to_running_p99_ms": round(quantiles[98], 1),
        "verified": {"completed": count},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    code = home / "code"
    code.mkdir()
    (code / "flows.py").write_text(FLOW)
    env = {**os.environ, "CONVEYOR_HOME": str(home), "CONVEYOR_LOGGING_LEVEL": "WARNING"}
    for name in ("CONVEYOR_DATABASE_URL", "CONVEYOR_BACKEND", "CONVEYOR_API_URL"):
        env.pop(name, None)
    with running_server(env) as api:
        result = _measure(api, code, args.runs, env)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
