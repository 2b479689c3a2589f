"""Calling a function with a time limit.

Async functions are cancelled when the limit passes. A sync function cannot be stopped
from outside, so it runs on a helper thread: when the limit passes the run ends at once
as TimedOut, and a TimeoutError is raised *inside* the helper thread at its next Python
instruction. Code blocked in C (``time.sleep``, a socket read) only sees it when the call
returns; until then the thread keeps running in the background and its result is thrown
away.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import threading
from collections.abc import Callable
from typing import Any

from conveyor.exceptions import TaskRunTimeoutError


def _timeout_error(name: str, timeout: float, error: type[Exception]) -> Exception:
    return error(f"{name!r} exceeded its timeout of {timeout:g} seconds.")


def call_sync_with_timeout(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    timeout: float | None,
    name: str,
    error: type[Exception] = TaskRunTimeoutError,
) -> Any:
    if timeout is None:
        return fn(*args, **kwargs)
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, fn(*args, **kwargs)))
        except BaseException as exc:  # noqa: BLE001 - handed back to the waiting thread
            outcome.append((False, exc))

    context = contextvars.copy_context()
    thread = threading.Thread(
        target=context.run, args=(target,), name=f"conveyor-timeout-{name}", daemon=True
    )
    thread.start()
    thread.join(timeout)
    if thread.is_alive() or not outcome:
        _interrupt(thread)
        raise _timeout_error(name, timeout, error)
    ok, value = outcome[0]
    if ok:
        return value
    raise value


def _interrupt(thread: threading.Thread) -> None:
    if thread.ident is None:
        return
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(TimeoutError)
    )


async def call_async_with_timeout(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    timeout: float | None,
    name: str,
    error: type[Exception] = TaskRunTimeoutError,
) -> Any:
    if timeout is None:
        return await fn(*args, **kwargs)
    try:
        return await asyncio.wait_for(fn(*args, **kwargs), timeout)
    except asyncio.TimeoutError:
        raise _timeout_error(name, timeout, error) from None
