"""``conveyor.serve`` and ``Flow.serve``: deployments without a work pool, run by the
process that made them.

The serving process is a worker (``workers.base.Worker``) whose claim is different: runs
of pool-less deployments have no queue, so instead of a pool's claim route it polls for
its deployments' due Scheduled runs and proposes each one Pending itself. That proposal
goes through the server's orchestration rules like a worker's claim, so of two processes
serving one deployment only one takes a run. It polls every ``POLL_SECONDS`` rather than
long-polling: a route claiming pool-less runs would need a change to the claim procedure.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import signal
import socket
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.client.api import ApiError, ServerUnreachable
from conveyor.schemas.workers import ClaimedRun
from conveyor.workers.base import Worker, WorkerOptions

if TYPE_CHECKING:
    from conveyor.client.api import ConveyorClient
    from conveyor.deployments.from_flow import FlowDeployment
    from conveyor.schemas.api import FlowRunRead
    from conveyor.schemas.deployments import DeploymentRead

logger = logging.getLogger("conveyor.serve")
POLL_SECONDS = 1.0


class ServeWorker(Worker):
    def __init__(
        self,
        client: ConveyorClient,
        options: WorkerOptions,
        deployments: list[DeploymentRead],
    ) -> None:
        super().__init__(client, options)
        self.deployments = {d.id: d for d in deployments}

    async def _claim(self, room: int) -> tuple[list[ClaimedRun], str | None]:
        from conveyor.schemas.api import MAX_PAGE, FlowRunFilter, FlowRunSort
        from conveyor.schemas.states import StateType

        flt = FlowRunFilter(
            deployment_id=list(self.deployments),
            state_type=[StateType.SCHEDULED],
            # The latest first: due ones can be missed only behind MAX_PAGE future runs,
            # more than the scheduler makes ahead for a deployment.
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=MAX_PAGE,
        )
        try:
            runs = await self.client.filter_flow_runs(flt)
            now = datetime.datetime.now(datetime.timezone.utc)
            # An AwaitingRetry run a process already launched is retried by that process.
            due = [r for r in runs if _due(r, now) and r.state_name != "AwaitingRetry"]
            due.sort(key=lambda r: r.expected_start_time or now)
            claimed = [c for run in due[:room] if (c := await self._take(run)) is not None]
        except (ApiError, ServerUnreachable) as exc:
            logger.warning("Polling for runs failed: %s", exc)
            claimed = []
        if not claimed:
            await self._sleep_unless_stopped(POLL_SECONDS)
        return claimed, None

    async def _take(self, run: FlowRunRead) -> ClaimedRun | None:
        from conveyor.schemas.api import OrchestrationStatus
        from conveyor.schemas.states import Pending
        from conveyor.schemas.work_pools import default_job_template

        pending = Pending(message=f"Claimed by {self.options.name!r} (served).")
        pending.state_details.transition_id = uuid.uuid4()
        result = await self.client.set_flow_run_state(run.id, pending)
        if result.status is not OrchestrationStatus.ACCEPT or run.deployment_id is None:
            return None
        deployment = self.deployments[run.deployment_id]
        return ClaimedRun(
            flow_run=run,
            deployment_id=deployment.id,
            entrypoint=deployment.entrypoint,
            source=deployment.source,
            work_queue_name="",
            base_job_template=default_job_template("process").model_dump(mode="json"),
            job_variables={},
        )

    async def _heartbeat(self) -> None:
        # No pool to be a worker of; each run's own heartbeat is still sent while it runs.
        return None


def _due(run: FlowRunRead, now: datetime.datetime) -> bool:
    return run.expected_start_time is None or run.expected_start_time <= now


async def serve_async(
    client: ConveyorClient, deployments: tuple[FlowDeployment, ...], limit: int | None
) -> str:
    from conveyor.deployments.deploy import prepare
    from conveyor.settings import Settings

    made = []
    for deployment in deployments:
        body = await prepare(client, deployment.spec, Path.cwd(), flow=deployment.flow)
        made.append(await client.deploy(body))
    names = ", ".join(f"{d.flow_name}/{d.name}" for d in made)
    options = WorkerOptions(
        pool="",
        name=f"serve-{socket.gethostname()}-{os.getpid()}",
        limit=limit,
        api_url=Settings.from_env().api_url,
    )
    worker = ServeWorker(client, options, made)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.request_stop)
    print(
        f"Serving {names}; run one with `conveyor deployment run {made[0].flow_name}/"
        f"{made[0].name}`. Ctrl+C stops.",
        flush=True,
    )
    try:
        return await worker.work()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def serve(*deployments: FlowDeployment, limit: int | None = None) -> None:
    """Deploy each of ``deployments`` (from ``flow.to_deployment(...)``) without a work pool,
    then run their due runs, each in a subprocess, at most ``limit`` at once, until SIGINT
    or SIGTERM (the first stops taking runs and waits for those in progress)."""
    from conveyor.client.embedded import run_with_client

    if not deployments:
        raise ValueError("serve() needs at least one deployment: flow.to_deployment(name).")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(message)s")
    reason = run_with_client(lambda client: serve_async(client, deployments, limit))
    logger.info("Stopped serving: %s.", reason)
