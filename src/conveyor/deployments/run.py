"""``run_deployment``: start a run of a deployment from Python, and wait for it to finish.

Called inside a flow or task, the new run is its child (``parent_flow_run_id`` and, in a
task, ``parent_task_run_id``), so the UI shows it under its parent and cancelling the
parent cancels it. The run itself is made by the server and launched by a worker of the
deployment's pool, like any run of the deployment.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.client.api import ConveyorClient
    from conveyor.schemas.api import FlowRunRead
    from conveyor.settings import Settings

_FLUSH_SECONDS = 10.0


def split_name(name: str) -> tuple[str, str]:
    """``flow-name/deployment-name`` as ``(flow, deployment)``; ValueError if not that."""
    # Deployment names cannot contain "/", flow names can: split at the last one.
    flow, slash, deployment = name.rpartition("/")
    if not slash or not flow or not deployment:
        raise ValueError(f"{name!r} is not a deployment name; write flow-name/deployment-name.")
    return flow, deployment


def _parents() -> tuple[Settings | None, uuid.UUID | None, uuid.UUID | None]:
    """The settings and ids of the run this is called in: (None, None, None) outside one.

    What the run recorded so far is flushed first: the server refuses a parent it has not
    heard of yet, and the engine records runs in the background."""
    from conveyor.engine.context import flow_run_context, task_run_context

    task = task_run_context.get()
    if task is not None:
        task.recorder.flush(_FLUSH_SECONDS)
        env = task.environment
        return env.settings, task.task_run.flow_run_id or env.flow_run_id, task.task_run.id
    flow = flow_run_context.get()
    if flow is not None:
        flow.recorder.flush(_FLUSH_SECONDS)
        return flow.environment.settings, flow.flow_run.id, None
    return None, None, None


async def watch_flow_run(
    client: ConveyorClient,
    flow_run_id: uuid.UUID,
    *,
    timeout: float | None = None,
    poll_interval: float = 1.0,
) -> AsyncIterator[FlowRunRead]:
    """The run as read every ``poll_interval`` seconds, until it is in a final state (the
    last one yielded) or ``timeout`` seconds have passed."""
    import asyncio

    from conveyor.schemas.states import TERMINAL_STATE_TYPES

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        run = await client.read_flow_run(flow_run_id)
        yield run
        if run.state_type in TERMINAL_STATE_TYPES:
            return
        if deadline is not None and time.monotonic() >= deadline:
            return
        wait = (
            poll_interval if deadline is None else min(poll_interval, deadline - time.monotonic())
        )
        await asyncio.sleep(max(wait, 0.0))


async def start_deployment_run(
    client: ConveyorClient,
    name: str,
    parameters: dict[str, Any] | None = None,
    *,
    job_variables: dict[str, Any] | None = None,
    scheduled_time: datetime.datetime | None = None,
    parent_flow_run_id: uuid.UUID | None = None,
    parent_task_run_id: uuid.UUID | None = None,
) -> FlowRunRead:
    """Create a run of the deployment ``flow-name/deployment-name`` (``ApiError`` 404 if
    there is none, 422 naming the field for bad parameters or job variables)."""
    from conveyor.schemas.deployments import DeploymentFlowRunCreate

    deployment = await client.read_deployment_by_name(*split_name(name))
    data = DeploymentFlowRunCreate(
        parameters=parameters or {},
        job_variables=job_variables or {},
        scheduled_time=scheduled_time,
        parent_flow_run_id=parent_flow_run_id,
        parent_task_run_id=parent_task_run_id,
    )
    run = await client.create_flow_run_from_deployment(deployment.id, data)
    run.flow_name = deployment.flow_name
    return run


def run_deployment(
    name: str,
    parameters: dict[str, Any] | None = None,
    *,
    job_variables: dict[str, Any] | None = None,
    scheduled_time: datetime.datetime | None = None,
    timeout: float | None = None,
    poll_interval: float = 1.0,
) -> FlowRunRead:
    """Run the deployment ``flow-name/deployment-name`` and wait until the run is final.

    ``parameters`` are laid over the deployment's defaults; ``scheduled_time`` (aware)
    makes it due later. ``timeout`` seconds at most are waited (None: as long as it
    takes; 0: not at all), and the run is returned as it is then: look at its
    ``state_type``. Inside a flow or task the run is a child of the current run.
    """
    from conveyor.client.embedded import connect
    from conveyor.client.portal import Portal
    from conveyor.settings import Settings

    settings, parent_flow, parent_task = _parents()

    async def run() -> FlowRunRead:
        client = await connect(settings or Settings.from_env())
        try:
            created = await start_deployment_run(
                client,
                name,
                parameters,
                job_variables=job_variables,
                scheduled_time=scheduled_time,
                parent_flow_run_id=parent_flow,
                parent_task_run_id=parent_task,
            )
            if timeout == 0:
                return created
            last = created
            async for polled in watch_flow_run(
                client, created.id, timeout=timeout, poll_interval=poll_interval
            ):
                last = polled
            last.flow_name = created.flow_name
            return last
        finally:
            await client.aclose()

    # A thread of its own: this works from sync code and from inside a running event
    # loop (an async flow) alike.
    portal = Portal("conveyor-run-deployment")
    try:
        return portal.call(run())
    finally:
        portal.stop()
