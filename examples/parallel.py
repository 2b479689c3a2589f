"""The same work on each of the four task runners.

Run it with ``python examples/parallel.py``. Counting primes is CPU-bound pure Python:
threads take turns on it (the GIL), while processes can use several cores once they have
started. ProcessPoolTaskRunner starts its workers with ``spawn``; they import this file
again, which is why the flows only run under ``if __name__ == "__main__":``, and tasks,
their arguments and results must pickle. The Dask runner starts a temporary local cluster
(threads here: ``processes=False``) for each flow run; pass ``address="tcp://..."`` to
use a running cluster instead.
"""

from __future__ import annotations

import time
from typing import Any

from conveyor import (
    DaskTaskRunner,
    Flow,
    ProcessPoolTaskRunner,
    SequentialTaskRunner,
    ThreadPoolTaskRunner,
    flow,
    task,
)


@task
def count_primes(start: int, stop: int) -> int:
    """How many primes there are in [start, stop), by trial division (slow on purpose)."""
    count = 0
    for n in range(max(start, 2), stop):
        if all(n % d for d in range(2, int(n**0.5) + 1)):
            count += 1
    return count


@flow
def primes(limit: int = 100_000, chunks: int = 8) -> int:
    """The number of primes below ``limit``, counted in ``chunks`` parallel task runs."""
    bounds = [limit * i // chunks for i in range(chunks + 1)]
    counts = count_primes.map(bounds[:-1], bounds[1:])
    total: int = sum(counts.result())
    return total


def on_each_runner() -> list[Flow[..., Any]]:
    """The ``primes`` flow once per task runner; ``with_options`` leaves the original alone."""
    runners = {
        "sequential": SequentialTaskRunner(),
        "threads": ThreadPoolTaskRunner(max_workers=4),
        "processes": ProcessPoolTaskRunner(max_workers=2),
        "dask": DaskTaskRunner(cluster_kwargs={"processes": False, "n_workers": 2}),
    }
    return [
        primes.with_options(name=f"primes-on-{name}", task_runner=runner)
        for name, runner in runners.items()
    ]


if __name__ == "__main__":
    for variant in on_each_runner():
        started = time.perf_counter()
        total = variant()
        print(f"{variant.name}: {total} primes in {time.perf_counter() - started:.2f}s")
