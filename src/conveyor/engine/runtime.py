"""Process-wide engine state, created on first use (never at import time)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import itertools
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from conveyor.client.null import NullRecorder
from conveyor.client.recorder import RunRecorder
from conveyor.engine.context import (
    RunEnvironment,
    current_tags,
    flow_run_context,
    task_run_context,
)
from conveyor.settings import Settings

T = TypeVar("T")

_lock = threading.Lock()
_settings: Settings | None = None
_recorder: RunRecorder | None = None
_recorder_settings: Settings | None = None
_override: RunRecorder | None = None
_standalone_keys = itertools.count()
_thread_loops = threading.local()


def get_settings() -> Settings:
    global _settings
    if _settings is None:
        with _lock:
            if _settings is None:
                _settings = Settings.from_env()
    return _settings


def get_recorder() -> RunRecorder:
    """Where runs are recorded: the server at ``CONVEYOR_API_URL`` when it is set, else
    the local database (embedded); nowhere with ``CONVEYOR_BACKEND=none``."""
    global _recorder, _recorder_settings
    if _override is not None:
        return _override
    settings = get_settings()
    recorder = _recorder
    if recorder is None or _recorder_settings is not settings:
        with _lock:
            if _recorder is None or _recorder_settings is not settings:
                # Settings changed (use_settings): runs go where the new ones say.
                _recorder, _recorder_settings = _make_recorder(settings), settings
            recorder = _recorder
    return recorder


def _make_recorder(settings: Settings) -> RunRecorder:
    if settings.backend == "none":
        return NullRecorder()
    from conveyor.client.recorder import Recorder
    from conveyor.client.transport import ApiTransport

    return Recorder(ApiTransport(settings))


def set_recorder(recorder: RunRecorder | None) -> None:
    """Record every run with ``recorder`` from now on (None: back to the settings)."""
    global _override
    _override = recorder


@contextlib.contextmanager
def use_recorder(recorder: RunRecorder) -> Iterator[RunRecorder]:
    """Record runs started inside the block with ``recorder`` (tests, embedding)."""
    global _override
    previous = _override
    _override = recorder
    try:
        yield recorder
    finally:
        recorder.flush()
        _override = previous


@contextlib.contextmanager
def use_settings(settings: Settings) -> Iterator[Settings]:
    global _settings
    previous = _settings
    _settings = settings
    try:
        yield settings
    finally:
        _settings = previous


def reset() -> None:
    """Forget cached settings and recorder so the next run reads the environment again."""
    global _settings, _recorder, _override
    _settings = None
    _recorder = None
    _override = None


def standalone_environment() -> RunEnvironment:
    """The environment of a task called outside of any flow."""
    return RunEnvironment(
        settings=get_settings(),
        flow_run_id=None,
        flow_run_name=None,
        flow_name=None,
        flow_parameters={},
        persist_result=None,
        result_storage=None,
        result_serializer=None,
        log_prints=False,
        tags=current_tags(),
    )


def next_standalone_key() -> int:
    return next(_standalone_keys)


def in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def caller_wants_awaitable() -> bool:
    """Whether calling an async flow or task here should hand back an awaitable.

    Yes at the top level (the caller awaits it or passes it to ``asyncio.run``) and inside
    an async flow or task. Inside a sync flow or task it runs to completion instead, also
    when that sync code runs on an event loop's thread (a sync flow called from async code
    or a notebook): sync code cannot await what it gets back.
    """
    task_ctx = task_run_context.get()
    if task_ctx is not None:
        return task_ctx.task.isasync
    flow_ctx = flow_run_context.get()
    if flow_ctx is not None:
        return flow_ctx.flow.isasync
    return True


def run_coro_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, keeping the caller's context.

    Each thread keeps one event loop for this, so running many async tasks from sync
    code does not pay for a new loop each time. From inside a running loop, the coroutine
    runs on a helper thread instead (a loop cannot block on itself).
    """
    if in_event_loop():
        context = contextvars.copy_context()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(context.run, _run_on_thread_loop, coro).result()
    return _run_on_thread_loop(coro)


def _run_on_thread_loop(coro: Coroutine[Any, Any, T]) -> T:
    loop: asyncio.AbstractEventLoop | None = getattr(_thread_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _thread_loops.loop = loop
    return loop.run_until_complete(coro)
