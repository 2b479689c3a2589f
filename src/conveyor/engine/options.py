"""Validation of the options shared by @flow and @task, with one clear error each."""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from conveyor.exceptions import ConfigurationError

RetryDelay = float | int | Sequence[float | int] | Callable[[int], Sequence[float | int]]

HOOK_NAMES = ("on_running", "on_completion", "on_failure", "on_crashed", "on_cancellation")


def check_callable(fn: Any, what: str) -> None:
    if not callable(fn):
        raise TypeError(
            f"@{what} must decorate a function, got {type(fn).__name__} {fn!r}; "
            f"put @{what} directly above a `def`."
        )


def check_retries(retries: Any, owner: str) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigurationError(f"{owner}: retries must be a whole number >= 0, got {retries!r}.")
    return retries


def _check_delay(value: Any, owner: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigurationError(
            f"{owner}: retry_delay_seconds must be numbers >= 0, got {value!r}."
        )
    return float(value)


def retry_delays(delay: RetryDelay | None, retries: int, owner: str) -> tuple[float, ...]:
    """The delay before each retry; the last one repeats if there are fewer than retries."""
    if delay is None:
        return (0.0,)
    if callable(delay):
        delay = delay(retries)
    if isinstance(delay, int | float) and not isinstance(delay, bool):
        return (_check_delay(delay, owner),)
    if isinstance(delay, Iterable) and not isinstance(delay, str | bytes):
        delays = tuple(_check_delay(d, owner) for d in delay)
        if not delays:
            raise ConfigurationError(f"{owner}: retry_delay_seconds must not be an empty list.")
        return delays
    raise ConfigurationError(
        f"{owner}: retry_delay_seconds must be a number, a list of numbers or a callable, "
        f"got {delay!r}."
    )


def check_jitter(factor: Any, owner: str) -> float | None:
    if factor is None:
        return None
    if isinstance(factor, bool) or not isinstance(factor, int | float) or factor < 0:
        raise ConfigurationError(f"{owner}: retry_jitter_factor must be >= 0, got {factor!r}.")
    return float(factor)


def delay_for_attempt(delays: tuple[float, ...], retry_number: int, jitter: float | None) -> float:
    """Delay before retry ``retry_number`` (1-based); jitter stretches it up to (1+j)x."""
    base = delays[min(retry_number - 1, len(delays) - 1)]
    if jitter:
        return base * random.uniform(1.0, 1.0 + jitter)
    return base


def check_timeout(timeout: Any, owner: str) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, datetime.timedelta):
        timeout = timeout.total_seconds()
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigurationError(f"{owner}: timeout_seconds must be > 0, got {timeout!r}.")
    return float(timeout)


def check_hooks(owner: str, **hooks: Any) -> dict[str, tuple[Callable[..., Any], ...]]:
    checked: dict[str, tuple[Callable[..., Any], ...]] = {}
    for name, value in hooks.items():
        if value is None:
            continue
        items = [value] if callable(value) else value
        if not isinstance(items, list | tuple) or not all(callable(h) for h in items):
            raise ConfigurationError(
                f"{owner}: {name} must be a callable or a list of callables, got {value!r}."
            )
        if items:
            checked[name] = tuple(items)
    return checked


def check_optional_bool(value: Any, name: str, owner: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ConfigurationError(f"{owner}: {name} must be True, False or None, got {value!r}.")


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """Retry delays of ``backoff_factor * 2**n`` seconds for retry n = 0, 1, 2, ..."""
    if (
        isinstance(backoff_factor, bool)
        or not isinstance(backoff_factor, int | float)
        or (backoff_factor < 0)
    ):
        raise ConfigurationError(
            f"exponential_backoff: backoff_factor must be >= 0, got {backoff_factor!r}."
        )

    def delays(retries: int) -> list[float]:
        return [backoff_factor * 2**n for n in range(max(retries, 1))]

    return delays
