"""Async flows and tasks, and mixing them with sync ones.

Called from sync code inside a run, an async flow or task runs to completion and returns
its value; statically it is typed as a coroutine, hence the casts below.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, cast

import pytest

from conveyor import State, flow, get_run_context, task
from conveyor.client import MemoryTransport
from conveyor.engine.context import FlowRunContext, TaskRunContext


@task
async def async_double(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


@task
def sync_double(x: int) -> int:
    return x * 2


def test_an_async_flow_is_awaitable() -> None:
    @flow
    async def pipeline(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    assert asyncio.run(pipeline(1)) == 2


def test_an_async_flow_with_return_state() -> None:
    @flow
    async def pipeline() -> str:
        return "done"

    state = asyncio.run(pipeline(return_state=True))
    assert isinstance(state, State)
    assert state.is_completed()
    assert state.result() == "done"


def test_an_async_flow_that_raises() -> None:
    @flow
    async def pipeline() -> None:
        raise ValueError("async failure")

    with pytest.raises(ValueError, match="async failure"):
        asyncio.run(pipeline())


def test_async_flow_parameters_are_validated() -> None:
    @flow
    async def pipeline(n: int) -> int:
        return n

    loose: Any = pipeline  # a string where an int is annotated, coerced at run time
    assert asyncio.run(loose("3")) == 3


def test_async_tasks_awaited_in_an_async_flow(transport: MemoryTransport) -> None:
    @flow
    async def pipeline() -> int:
        return await async_double(await async_double(1))

    assert asyncio.run(pipeline()) == 4
    assert len(transport.task_runs) == 2
    for run_id in transport.task_runs:
        assert transport.task_run_state_types(run_id) == ["PENDING", "RUNNING", "COMPLETED"]


def test_sync_tasks_in_an_async_flow() -> None:
    @flow
    async def pipeline() -> int:
        return sync_double(3) + sync_double.submit(1).result()

    assert asyncio.run(pipeline()) == 8


def test_async_tasks_in_a_sync_flow_run_to_completion() -> None:
    @flow
    def pipeline() -> list[int]:
        direct = cast(int, async_double(2))  # typed as a coroutine; runs to completion
        submitted = async_double.submit(3).result()
        return [direct, submitted]

    assert pipeline() == [4, 6]


def test_a_standalone_async_task() -> None:
    assert asyncio.run(async_double(5)) == 10


def test_submitted_async_tasks_run_concurrently() -> None:
    @task
    async def nap(i: int) -> int:
        await asyncio.sleep(0.3)
        return i

    @flow
    def pipeline() -> list[int]:
        return [f.result() for f in [nap.submit(i) for i in range(8)]]

    started = time.monotonic()
    assert pipeline() == list(range(8))
    assert time.monotonic() - started < 1.5  # not 8 x 0.3 s


def test_async_tasks_gathered_in_an_async_flow_run_concurrently() -> None:
    @task
    async def nap(i: int) -> int:
        await asyncio.sleep(0.3)
        return i

    @flow
    async def pipeline() -> list[int]:
        return list(await asyncio.gather(*(nap(i) for i in range(8))))

    started = time.monotonic()
    assert asyncio.run(pipeline()) == list(range(8))
    assert time.monotonic() - started < 1.5


def test_run_contexts_inside_async_code() -> None:
    seen: dict[str, Any] = {}

    @task
    async def inner() -> None:
        ctx = get_run_context()
        assert isinstance(ctx, TaskRunContext)
        seen["task_flow_run_id"] = ctx.task_run.flow_run_id

    @flow
    async def pipeline() -> None:
        ctx = get_run_context()
        assert isinstance(ctx, FlowRunContext)
        seen["flow_run_id"] = ctx.flow_run.id
        await inner()

    asyncio.run(pipeline())
    assert seen["task_flow_run_id"] == seen["flow_run_id"]


def test_an_async_subflow_in_a_sync_flow_runs_to_completion() -> None:
    @flow
    async def child(x: int) -> int:
        await asyncio.sleep(0)
        return x * 10

    @flow
    def parent() -> int:
        return cast(int, child(4))

    assert parent() == 40


def test_an_async_subflow_awaited_in_an_async_flow() -> None:
    @flow
    async def child(x: int) -> int:
        return x + 1

    @flow
    async def parent() -> int:
        return await child(1) + await child(2)

    assert asyncio.run(parent()) == 5


def test_a_sync_flow_called_inside_a_running_event_loop() -> None:
    @flow
    def sync_pipeline() -> int:
        return sync_double(2) + cast(int, async_double(1))

    async def main() -> int:
        return sync_pipeline()

    assert asyncio.run(main()) == 6


def test_an_async_flow_called_from_a_worker_thread() -> None:
    @flow
    async def pipeline() -> str:
        return threading.current_thread().name

    results: list[str] = []
    thread = threading.Thread(target=lambda: results.append(asyncio.run(pipeline())))
    thread.start()
    thread.join(10)
    assert results and results[0] == thread.name


def test_many_async_tasks_called_from_sync_code_reuse_an_event_loop() -> None:
    @flow
    def pipeline() -> int:
        return sum(cast(int, async_double(i)) for i in range(50))

    assert pipeline() == sum(i * 2 for i in range(50))


def test_a_sync_task_called_in_an_async_flow_can_call_an_async_task() -> None:
    @task
    def sync_wrapper(x: int) -> int:
        return cast(int, async_double(x))  # runs to completion: a sync task cannot await

    @flow
    async def pipeline() -> int:
        return sync_wrapper(2) + sync_wrapper.submit(3).result()

    assert asyncio.run(pipeline()) == 10


def test_an_async_subflow_in_a_sync_flow_called_inside_a_running_event_loop() -> None:
    @flow
    async def child() -> str:
        return "child"

    @flow
    def parent() -> str:
        return cast(str, child())

    async def main() -> str:
        return parent()

    assert asyncio.run(main()) == "child"
