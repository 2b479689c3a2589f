"""Tasks shared by the task-runner tests.

They live at module level of an importable module because process and Dask workers
load them by reference. Anything that must be observed across processes (attempt
counters, "did it run" markers, gates) goes through files, never through memory.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from conveyor import task


class Boom(Exception):
    """The one exception the failing tasks raise; its type must survive the trip home."""


class TwoPartError(Exception):
    """Pickles, but cannot be rebuilt from its pickle: ``__init__`` wants two arguments."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def numbers(n: int) -> list[int]:
    return list(range(n))


@task
def fail(message: str) -> int:
    raise Boom(message)


@task
def fail_two_part(code: int) -> int:
    raise TwoPartError(code, "bad request")


@task(retries=2, retry_delay_seconds=0)
def flaky(counter: str, failures: int) -> int:
    """Fails ``failures`` times, then returns the number of the attempt that worked."""
    path = pathlib.Path(counter)
    attempt = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(attempt))
    if attempt <= failures:
        raise Boom(f"attempt {attempt} failed")
    return attempt


def _leaf_sum(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_leaf_sum(v) for v in value.values())
    if isinstance(value, list | tuple | set):
        return sum(_leaf_sum(v) for v in value)
    assert isinstance(value, int), f"an unresolved input reached the task: {value!r}"
    return value


@task
def nested_sum(values: Any) -> int:
    """Sums the integers in nested lists/dicts; fails if a future was not resolved."""
    return _leaf_sum(values)


@task
async def async_double(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


@task
async def async_fail(message: str) -> int:
    await asyncio.sleep(0)
    raise Boom(message)


@task
def write_after(path: str, delay: float) -> str:
    """Writes ``path`` after ``delay`` seconds, so a task that did not wait would miss it."""
    time.sleep(delay)
    pathlib.Path(path).write_text("written")
    return path


@task
def read_file(path: str) -> str:
    return pathlib.Path(path).read_text()


@task
def mark_and_return(marker: str, value: Any) -> Any:
    """Leaves a file behind when it runs, so tests can tell whether it ran."""
    pathlib.Path(marker).write_text("ran")
    return value


@task
def describe(value: Any) -> tuple[str, str]:
    return type(value).__name__, str(value)


@task
def wait_for_gate(gate: str, timeout: float = 30.0) -> str:
    """Finishes only once the file ``gate`` exists (or fails after ``timeout``)."""
    deadline = time.monotonic() + timeout
    path = pathlib.Path(gate)
    while not path.exists():
        if time.monotonic() > deadline:
            raise Boom(f"gate {gate} was never opened")
        time.sleep(0.01)
    return "opened"


# -- bad inputs and outcomes for the runner-specific tests ----------------------------
@task
def make_generator(n: int) -> Iterator[int]:
    return (i for i in range(n))


@task
def make_lock() -> Any:
    return threading.Lock()


@task
def identity(value: Any) -> Any:
    return value


@task
def die(code: int) -> int:
    os._exit(code)


@task
async def async_sleep(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@task
def process_id() -> int:
    return os.getpid()
