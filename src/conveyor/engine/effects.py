"""One copy of each run's logic, performed by a sync or an async driver.

A flow or task run is written once, as a generator that yields *effects* — call the
user's function, sleep before a retry, run hooks, wait for upstream futures — and gets
back their outcomes. ``perform_sync`` and ``perform_async`` are the only places that
differ between sync and async code, which is how Conveyor avoids hand-kept twins.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.engine.hooks import run_hooks_async, run_hooks_sync
from conveyor.engine.timeouts import call_async_with_timeout, call_sync_with_timeout

if TYPE_CHECKING:
    from conveyor.engine.futures import ConveyorFuture
    from conveyor.schemas.states import State


@dataclass(slots=True)
class Call:
    """Call the user's function (sync or async) under an optional time limit."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    timeout: float | None
    name: str
    timeout_error: type[Exception]
    is_async: bool
    """``fn`` is a coroutine function: known when the task or flow was made, and asking
    ``inspect`` again on every call cost a trivial task ~1 µs."""


@dataclass(slots=True)
class Sleep:
    seconds: float


@dataclass(slots=True)
class RunHooks:
    hooks: Iterable[Callable[..., Any]]
    args: tuple[Any, ...]
    log_extra: dict[str, Any]


@dataclass(slots=True)
class WaitFor:
    futures: list[ConveyorFuture[Any]]


@dataclass(slots=True)
class Blocking:
    """Call a blocking function (e.g. wait for a concurrency slot): in place from sync
    code, in a worker thread from async code so the event loop keeps running."""

    fn: Callable[[], Any]


Effect = Call | Sleep | RunHooks | WaitFor | Blocking
Steps = Generator[Effect, Any, "State"]


def perform_sync(steps: Steps) -> State:
    """Drive a run from sync code; a coroutine function is run to completion."""
    outcome: Any = None
    error: BaseException | None = None
    while True:
        finished, effect = _advance(steps, outcome, error)
        if finished:
            final: State = effect
            return final
        outcome, error = None, None
        try:
            if isinstance(effect, Call):
                if effect.is_async:
                    from conveyor.engine.runtime import run_coro_sync

                    outcome = run_coro_sync(_call_async(effect))
                else:
                    outcome = _call_sync(effect)
            elif isinstance(effect, Sleep):
                time.sleep(effect.seconds)
            elif isinstance(effect, RunHooks):
                run_hooks_sync(effect.hooks, effect.args, effect.log_extra)
            elif isinstance(effect, Blocking):
                outcome = effect.fn()
            else:
                for future in effect.futures:
                    future.wait()
        except BaseException as exc:  # noqa: BLE001 - handed to the run, which records it
            error = exc


async def perform_async(steps: Steps) -> State:
    """Drive a run from async code; a sync function is called in place."""
    outcome: Any = None
    error: BaseException | None = None
    while True:
        finished, effect = _advance(steps, outcome, error)
        if finished:
            final: State = effect
            return final
        outcome, error = None, None
        try:
            if isinstance(effect, Call):
                if effect.is_async:
                    outcome = await _call_async(effect)
                else:
                    outcome = _call_sync(effect)
            elif isinstance(effect, Sleep):
                await asyncio.sleep(effect.seconds)
            elif isinstance(effect, RunHooks):
                await run_hooks_async(effect.hooks, effect.args, effect.log_extra)
            elif isinstance(effect, Blocking):
                outcome = await asyncio.to_thread(effect.fn)
            else:
                for future in effect.futures:
                    await future.wait_async()
        except BaseException as exc:  # noqa: BLE001 - handed to the run, which records it
            error = exc


def _advance(steps: Steps, outcome: Any, error: BaseException | None) -> tuple[bool, Any]:
    """Resume the run with the last outcome; (True, final state) once it returns."""
    try:
        return False, steps.send(outcome) if error is None else steps.throw(error)
    except StopIteration as done:
        return True, done.value


def _call_sync(effect: Call) -> Any:
    return call_sync_with_timeout(
        effect.fn, effect.args, effect.kwargs, effect.timeout, effect.name, effect.timeout_error
    )


def _call_async(effect: Call) -> Any:
    return call_async_with_timeout(
        effect.fn, effect.args, effect.kwargs, effect.timeout, effect.name, effect.timeout_error
    )
