"""Engine overhead with no backend (CONVEYOR_BACKEND=none); prints one JSON line.

    python bench/sdk_overhead.py [--repeat 5]

Measures: an empty flow's wall time, per-task overhead of 1,000 sequential task calls,
per-task cost of 10,000 mapped trivial tasks on the thread runner, peak RSS of a process
that maps 100,000 tasks, and the start-up time of ``import conveyor`` and
``conveyor --help``. Each figure is the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def bench_engine(repeat: int) -> dict[str, float]:
    from conveyor import SequentialTaskRunner, flow, task

    @task
    def noop(x: int) -> int:
        return x

    @flow
    def empty() -> None:
        return None

    @flow
    def sequential(n: int) -> None:
        for i in range(n):
            noop(i)

    @flow(task_runner=SequentialTaskRunner())
    def sequential_runner(n: int) -> None:
        for i in range(n):
            noop.submit(i)

    @flow
    def mapped(n: int) -> None:
        noop.map(range(n)).wait()

    empty()  # warm-up: logging set-up, first imports
    empty_s = []
    for _ in range(max(repeat, 20)):
        start = time.perf_counter()
        empty()
        empty_s.append(time.perf_counter() - start)
    empty_median = statistics.median(empty_s)

    def per_task(fn: object, n: int) -> float:
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn(n)  # type: ignore[operator]
            samples.append((time.perf_counter() - start - empty_median) / n)
        return round(statistics.median(samples) * 1e6, 2)

    return {
        "empty_flow_ms": _median_ms(empty_s),
        "sequential_us_per_task": per_task(sequential, 1_000),
        "sequential_submit_us_per_task": per_task(sequential_runner, 1_000),
        "mapped_threads_us_per_task": per_task(mapped, 10_000),
    }


def _child(code: str) -> str:
    env = {**os.environ, "CONVEYOR_LOGGING_LEVEL": "WARNING", "CONVEYOR_BACKEND": "none"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


def bench_rss_100k() -> float:
    code = (
        "import resource\n"
        "from conveyor import flow, task\n"
        "@task\n"
        "def noop(x: int) -> int:\n"
        "    return x\n"
        "@flow\n"
        "def big() -> int:\n"
        "    futures = noop.map(range(100_000))\n"
        "    futures.wait()\n"
        "    return len(futures)\n"
        "assert big() == 100_000\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    return round(int(_child(code)) / 1024, 1)


def bench_cold_empty_flow(repeat: int) -> float:
    """The first flow of a fresh process: includes loading the engine and pydantic."""
    code = (
        "import time\n"
        "start = time.perf_counter()\n"
        "from conveyor import flow\n"
        "@flow\n"
        "def empty() -> None:\n"
        "    return None\n"
        "empty()\n"
        "print(time.perf_counter() - start)\n"
    )
    return _median_ms([float(_child(code)) for _ in range(repeat)])


def _wall(cmd: list[str], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return _median_ms(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("CONVEYOR_LOGGING_LEVEL", "WARNING")
    os.environ["CONVEYOR_BACKEND"] = "none"  # engine overhead alone; tracked_overhead.py records
    result: dict[str, object] = {"benchmark": "sdk_overhead", "backend": "none"}
    result.update(bench_engine(args.repeat))
    result["empty_flow_cold_ms"] = bench_cold_empty_flow(args.repeat)
    result["peak_rss_100k_mapped_mb"] = bench_rss_100k()
    result["import_conveyor_ms"] = _wall([sys.executable, "-c", "import conveyor"], args.repeat)
    result["import_flow_task_ms"] = _wall(
        [sys.executable, "-c", "from conveyor import flow, task"], args.repeat
    )
    result["python_startup_ms"] = _wall([sys.executable, "-c", "pass"], args.repeat)
    conveyor_bin = str(Path(sys.executable).parent / "conveyor")
    if Path(conveyor_bin).exists():
        result["cli_help_ms"] = _wall([conveyor_bin, "--help"], args.repeat)
    result["bench_process_max_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
