"""Starting task runs from Task: call now, submit to the flow's runner, or map."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from conveyor.client.recorder import RunRecorder
from conveyor.engine import runtime
from conveyor.engine.context import current_tags, flow_run_context, task_run_context
from conveyor.engine.futures import ConveyorFuture, FutureList
from conveyor.engine.ids import new_id
from conveyor.engine.inputs import unmapped
from conveyor.engine.run_logging import configure_logging
from conveyor.engine.task_call import TaskCall
from conveyor.exceptions import ConfigurationError, NotInFlowError

if TYPE_CHECKING:
    from conveyor.engine.tasks import Task


def _make_call(
    task: Task[..., Any],
    parameters: dict[str, Any],
    wait_for: Iterable[Any] | None,
    map_index: int | None = None,
) -> tuple[TaskCall, RunRecorder]:
    flow_ctx = flow_run_context.get()
    if flow_ctx is not None:
        cancel = flow_ctx.cancel_requested
        if cancel is not None and cancel.is_set():
            from conveyor.engine.cancellation import FlowRunCancelled

            raise FlowRunCancelled(f"Flow run {flow_ctx.flow_run.name!r} was cancelled.")
        env = flow_ctx.environment
        recorder: RunRecorder = flow_ctx.recorder
        dynamic_key = flow_ctx.next_dynamic_key(task.task_key)
    else:
        task_ctx = task_run_context.get()
        if task_ctx is not None:
            env, recorder = task_ctx.environment, task_ctx.recorder
        else:
            env, recorder = runtime.standalone_environment(), runtime.get_recorder()
            configure_logging(env.settings.logging_level)
        dynamic_key = runtime.next_standalone_key()
    context_tags = current_tags()
    # The common case (no tags around) must not build a new set per call.
    tags = task.tags | env.tags | context_tags if env.tags or context_tags else task.tags
    call = TaskCall(
        task=task,
        parameters=parameters,
        wait_for=list(wait_for) if wait_for is not None else None,
        environment=env,
        task_run_id=new_id(),
        dynamic_key=dynamic_key,
        map_index=map_index,
        tags=tags,
    )
    return call, recorder


def run_task(
    task: Task[..., Any],
    parameters: dict[str, Any],
    *,
    wait_for: Iterable[Any] | None = None,
    return_state: bool = False,
) -> Any:
    """Run a task in the calling thread (or return an awaitable to async callers)."""
    call, recorder = _make_call(task, parameters, wait_for)
    if task.isasync and runtime.caller_wants_awaitable():
        return _run_async_returning(call, recorder, return_state)
    state = call.run_sync(recorder)
    return state if return_state else state.result()


async def _run_async_returning(call: TaskCall, recorder: RunRecorder, return_state: bool) -> Any:
    state = await call.run_async(recorder)
    return state if return_state else state.result()


def submit_task(
    task: Task[..., Any], parameters: dict[str, Any], *, wait_for: Iterable[Any] | None = None
) -> ConveyorFuture[Any]:
    flow_ctx = flow_run_context.get()
    if flow_ctx is None:
        raise NotInFlowError(
            f"{task.name}.submit() needs a running flow to provide a task runner; "
            f"call {task.name}(...) to run it directly, or submit it from inside a @flow."
        )
    call, _ = _make_call(task, parameters, wait_for)
    future = flow_ctx.task_runner.submit(call)
    flow_ctx.futures.append(future)
    return future


def _variadic_names(task: Task[..., Any]) -> frozenset[str]:
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    params = task.signature.signature.parameters.values()
    return frozenset(p.name for p in params if p.kind in kinds)


def map_task(
    task: Task[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    wait_for: Iterable[Any] | None = None,
) -> FutureList[Any]:
    flow_ctx = flow_run_context.get()
    if flow_ctx is None:
        raise NotInFlowError(
            f"{task.name}.map() needs a running flow to provide a task runner; "
            "call it from inside a @flow."
        )
    parameters = task.signature.bind(args, kwargs)
    # *args and **kwargs are containers the call made, not iterables the caller passed.
    variadic = _variadic_names(task) if task.signature.has_var else frozenset()
    iterables: dict[str, list[Any]] = {}
    static: dict[str, Any] = {}
    for name, value in parameters.items():
        if type(value) is ConveyorFuture:
            value = value.result()  # mapping over an upstream result needs its value now
        if type(value) is unmapped:
            static[name] = value.value
        elif name in variadic:
            static[name] = value
        elif task._is_mapped(value):
            iterables[name] = list(value)
        else:
            static[name] = value
    if not iterables:
        raise ConfigurationError(
            f"{task.name}.map() needs at least one iterable argument; "
            "wrap arguments that should not be iterated in unmapped(...)."
        )
    lengths = {name: len(values) for name, values in iterables.items()}
    if len(set(lengths.values())) > 1:
        raise ConfigurationError(
            f"{task.name}.map() got iterables of different lengths: {lengths}; "
            "make them equal or wrap fixed ones in unmapped(...)."
        )
    count = next(iter(lengths.values()))
    futures: FutureList[Any] = FutureList()
    runner = flow_ctx.task_runner
    wait_list = list(wait_for) if wait_for is not None else None
    for index in range(count):
        call_params = dict(static)
        for name, values in iterables.items():
            call_params[name] = values[index]
        call, _ = _make_call(task, call_params, wait_list, map_index=index)
        future = runner.submit(call)
        futures.append(future)
    flow_ctx.futures.extend(futures)
    return futures
