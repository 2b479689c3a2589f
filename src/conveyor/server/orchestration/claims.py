"""Claiming: a worker takes due runs of its pool, each moved SCHEDULED -> PENDING.

One claim is one transaction. Queues are served by priority (1 first), each queue's runs
by scheduled time, within the pool's and each queue's concurrency limits (runs Pending,
Running or Cancelling hold a slot), and each deployment's: a due run of a deployment whose
limit is full stays Scheduled until a slot frees (``ENQUEUE``) or is Cancelled saying why
(``CANCEL_NEW``). Every run goes through ``set_flow_run_state``, so the
rules decide and the history shows the claim; of two claimers, one gets a run (SQLite
serialises write transactions; PostgreSQL skips rows another claimer has locked).
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Sequence

from sqlalchemy.orm import Session

from conveyor.schemas.api import OrchestrationStatus
from conveyor.schemas.deployments import CollisionStrategy
from conveyor.schemas.states import Cancelled, Pending
from conveyor.server.database import orm
from conveyor.server.models import claims, flow_runs, work_pools
from conveyor.server.orchestration.policy import set_flow_run_state


@dataclasses.dataclass(frozen=True)
class Claim:
    worker_id: uuid.UUID
    runs: list[tuple[orm.FlowRun, orm.WorkQueue]]
    next_due: datetime.datetime | None
    """When nothing was claimed: when the next claimable run falls due (None: no run)."""


def claim_runs(
    session: Session,
    pool_name: str,
    worker_name: str,
    queue_names: Sequence[str] | None,
    limit: int,
    *,
    prefetch_seconds: float = 0.0,
    now: datetime.datetime | None = None,
) -> Claim:
    """Claim up to ``limit`` runs due by ``now + prefetch_seconds`` for the worker; the
    claim is also the worker's heartbeat (it is registered on its first)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    horizon = now + datetime.timedelta(seconds=prefetch_seconds)
    worker = work_pools.worker_heartbeat(session, pool_name, worker_name)
    pool = work_pools.existing_work_pool(session, pool_name)
    queues = claims.open_queues(session, pool, queue_names)
    if pool.paused or not queues:
        return Claim(worker.id, [], None)
    active = claims.active_runs_by_queue(session, pool)
    room = limit
    if pool.concurrency_limit is not None:
        room = min(room, pool.concurrency_limit - sum(active.values()))
    slots = claims.deployment_slots(session, pool) if room > 0 else {}
    taken: list[tuple[orm.FlowRun, orm.WorkQueue]] = []
    for queue in queues:
        queue_room = room - len(taken)
        if queue.concurrency_limit is not None:
            queue_room = min(queue_room, queue.concurrency_limit - active.get(queue.id, 0))
        if queue_room <= 0:
            continue
        waiting = [id_ for id_, s in slots.items() if s.full and s.strategy is ENQUEUE]
        for run in claims.due_runs(session, queue.id, horizon, queue_room, waiting=waiting):
            slot = slots.get(run.deployment_id) if run.deployment_id is not None else None
            if slot is not None and slot.full:
                _collide(session, run, slot, now)
            elif _to_pending(session, run, worker, now):
                taken.append((run, queue))
                if slot is not None:
                    slot.active += 1
    next_due = None
    if not taken:
        next_due = claims.next_scheduled_time(session, [q.id for q in queues], horizon)
    return Claim(worker.id, taken, next_due)


ENQUEUE = CollisionStrategy.ENQUEUE


def _collide(
    session: Session, run: orm.FlowRun, slot: claims.DeploymentSlots, now: datetime.datetime
) -> None:
    """A due run of a full deployment: left Scheduled (ENQUEUE) or Cancelled (CANCEL_NEW).
    A prefetched run is not due yet, and a slot may free by its time: it waits either way."""
    due = run.expected_start_time is None or run.expected_start_time <= now
    if slot.strategy is ENQUEUE or not due:
        return
    cancelled = Cancelled(
        message=f"Not started: its deployment's concurrency limit ({slot.limit}) was full "
        "and its collision strategy is CANCEL_NEW."
    )
    cancelled.state_details.transition_id = uuid.uuid4()
    set_flow_run_state(session, run.id, cancelled, now=now)


def _to_pending(
    session: Session, run: orm.FlowRun, worker: orm.Worker, now: datetime.datetime
) -> bool:
    pending = Pending(message=f"Claimed by worker {worker.name!r}.")
    pending.state_details.transition_id = uuid.uuid4()
    # A prefetched run is claimed before its time: judged as of then. Its engine starts
    # it (Pending -> Running) only once the scheduled time has come.
    when = run.expected_start_time
    decided_at = max(now, when) if when is not None else now
    result = set_flow_run_state(session, run.id, pending, now=decided_at)
    if result.status is not OrchestrationStatus.ACCEPT:
        return False
    flow_runs.assign_worker(session, run, worker.id, now)
    return True
