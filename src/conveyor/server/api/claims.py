"""``POST /api/work_pools/{pool}/claim``: a worker takes due runs of its pool, long-polling.

With nothing to claim, the request waits up to ``wait_seconds``, never inside a
transaction: it tries again when woken (a run was made in this server process, see
``ClaimWaiters.notify``), when the pool's next scheduled run falls due, and every
``RECHECK_SECONDS`` for runs made by other processes (the scheduler, another server).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy.orm import Session

from conveyor.exceptions import JobVariablesError
from conveyor.schemas.api import FlowRunRead
from conveyor.schemas.deployments import NAME_PATTERN
from conveyor.schemas.work_pools import BaseJobTemplate, resolve_job_variables
from conveyor.schemas.workers import ClaimedRun, ClaimResult, WorkerClaim
from conveyor.server.api.deps import get_database
from conveyor.server.database import orm
from conveyor.server.database.engine import Database
from conveyor.server.models.flow_runs import flow_name_of
from conveyor.server.orchestration.claims import Claim, claim_runs

router = APIRouter(prefix="/work_pools", tags=["work pools"])
DB = Annotated[Database, Depends(get_database)]
Name = Annotated[str, Path(min_length=1, max_length=255, pattern=NAME_PATTERN)]
RECHECK_SECONDS = 1.0


class ClaimWaiters:
    """One event per pool that claimers wait on; set (and replaced) when a run may have
    become claimable there."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def event(self, pool: str) -> asyncio.Event:
        event = self._events.get(pool)
        if event is None:
            event = self._events[pool] = asyncio.Event()
        return event

    def notify(self, pool: str | None = None) -> None:
        """Wake the claimers of ``pool`` (None: of every pool)."""
        names = list(self._events) if pool is None else [pool]
        for name in names:
            event = self._events.pop(name, None)
            if event is not None:
                event.set()


def claim_waiters(request: Request) -> ClaimWaiters:
    waiters: ClaimWaiters = request.app.state.claim_waiters
    return waiters


async def wake_claimers_after_runs_are_made(request: Request) -> AsyncIterator[None]:
    """A dependency of the deployments routes: once a run of a deployment was made, its
    pool's waiting claimers look again (which pool is not known here: all of them do)."""
    yield
    if request.method == "POST" and request.url.path.endswith("/create_flow_run"):
        claim_waiters(request).notify()


def _claimed(session: Session, claim: Claim) -> ClaimResult:
    runs = []
    # A claim's runs mostly share a pool, a deployment and a flow: each is looked up,
    # and each pool's template read, once per claim.
    deployments: dict[uuid.UUID, orm.Deployment | None] = {}
    templates: dict[uuid.UUID, tuple[orm.WorkPool, BaseJobTemplate]] = {}
    flow_names: dict[uuid.UUID, str | None] = {}
    for run, queue in claim.runs:
        deployment = None
        if run.deployment_id is not None:
            if run.deployment_id not in deployments:
                deployments[run.deployment_id] = session.get(orm.Deployment, run.deployment_id)
            deployment = deployments[run.deployment_id]
        if queue.work_pool_id not in templates:
            pool = session.get(orm.WorkPool, queue.work_pool_id)
            assert pool is not None
            templates[queue.work_pool_id] = (
                pool,
                BaseJobTemplate.model_validate(pool.base_job_template),
            )
        pool, template = templates[queue.work_pool_id]
        if run.flow_id not in flow_names:
            flow_names[run.flow_id] = flow_name_of(session, run)
        flow_run = FlowRunRead.model_validate(run)
        flow_run.flow_name = flow_names[run.flow_id]
        runs.append(
            ClaimedRun.model_validate(
                {
                    "flow_run": flow_run,
                    "deployment_id": run.deployment_id,
                    "entrypoint": deployment.entrypoint if deployment else None,
                    "source": deployment.source if deployment else None,
                    "work_queue_name": queue.name,
                    "base_job_template": pool.base_job_template,
                    "job_variables": _job_variables(template, deployment, run),
                }
            )
        )
    return ClaimResult(worker_id=claim.worker_id, runs=runs)


def _job_variables(
    template: BaseJobTemplate, deployment: orm.Deployment | None, run: orm.FlowRun
) -> dict[str, Any]:
    layers = [deployment.job_variables if deployment else {}, run.job_variables]
    try:
        return resolve_job_variables(template, *layers)
    except JobVariablesError:
        # Checked when the run was made; the pool's template changed since. The worker
        # resolves again and fails the run with the reason, rather than losing it here.
        merged: dict[str, Any] = {}
        for layer in layers:
            merged.update(layer)
        return merged


@router.post("/{pool}/claim", response_model=ClaimResult)
async def claim(
    pool: Name,
    body: WorkerClaim,
    request: Request,
    database: DB,
    waiters: Annotated[ClaimWaiters, Depends(claim_waiters)],
) -> ClaimResult:
    """Claim up to ``limit`` due runs (each moved to Pending and given to the worker),
    waiting up to ``wait_seconds`` when none is due. Also the worker's heartbeat.

    404 for an unknown pool or queue name."""

    def attempt(session: Session) -> tuple[ClaimResult, float | None]:
        claimed = claim_runs(
            session,
            pool,
            body.worker_name,
            body.queues,
            body.limit,
            prefetch_seconds=body.prefetch_seconds,
        )
        until_due = None
        if claimed.next_due is not None:
            wait = claimed.next_due - datetime.datetime.now(datetime.timezone.utc)
            until_due = wait.total_seconds() - body.prefetch_seconds
        return _claimed(session, claimed), until_due

    loop = asyncio.get_running_loop()
    deadline = loop.time() + body.wait_seconds
    while True:
        # Taken before looking, so a run made between the look and the wait is not missed.
        event = waiters.event(pool)
        result, until_due = await database.write_first(attempt)
        remaining = deadline - loop.time()
        if result.runs or remaining <= 0:
            return result
        timeout = min(remaining, RECHECK_SECONDS)
        if until_due is not None:
            timeout = min(timeout, max(until_due, 0.01))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        if await request.is_disconnected():
            return result  # claiming now would hand runs to a worker that is gone
