"""Running state-change hooks: a failing hook is logged and never changes the run."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any

logger = logging.getLogger("conveyor.hooks")
_HOOK_FAILED = "Hook %r raised an error; the run's state is unchanged."


def _hook_name(hook: Callable[..., Any]) -> str:
    return getattr(hook, "__name__", repr(hook))


def run_hooks_sync(
    hooks: Iterable[Callable[..., Any]], args: tuple[Any, ...], extra: dict[str, Any]
) -> None:
    """Call each hook with ``args``; ``extra`` (the run's ids) goes on any error record."""
    from conveyor.engine.runtime import run_coro_sync

    for hook in hooks:
        try:
            result = hook(*args)
            if inspect.isawaitable(result):
                run_coro_sync(_await(result))
        except Exception:
            logger.exception(_HOOK_FAILED, _hook_name(hook), extra=extra)


async def run_hooks_async(
    hooks: Iterable[Callable[..., Any]], args: tuple[Any, ...], extra: dict[str, Any]
) -> None:
    for hook in hooks:
        try:
            result = hook(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception(_HOOK_FAILED, _hook_name(hook), extra=extra)


async def _await(awaitable: Any) -> Any:
    return await awaitable
