"""Hello, Conveyor: a flow, two tasks, submit and map, and a retry.

Run it with ``python examples/hello.py``.
"""

from __future__ import annotations

import itertools

from conveyor import flow, task

_attempts = itertools.count(1)


@task(retries=2, retry_delay_seconds=0.5)
def fetch_numbers(count: int) -> list[int]:
    """Pretend to call a flaky API: every other attempt fails, so a retry is needed."""
    if next(_attempts) % 2 == 1:
        raise ConnectionError("the API is flaky today")
    return list(range(1, count + 1))


@task
def square(x: int) -> int:
    return x * x


@flow(log_prints=True)
def hello(count: int = 5) -> int:
    numbers = fetch_numbers.submit(count)  # starts at once, returns a future
    squares = square.map(numbers)  # one task run per number, run in parallel
    total: int = sum(squares.result())  # wait for all of them
    print(f"The first {count} squares add up to {total}.")  # log_prints makes this a log
    return total


if __name__ == "__main__":
    hello()
