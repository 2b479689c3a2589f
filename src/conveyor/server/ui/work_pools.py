"""The work pools page: each pool's queues, its workers online and offline, and the
concurrency limits that bound them."""

from __future__ import annotations

import dataclasses
import datetime

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from conveyor.schemas.deployments import (
    WORKER_OFFLINE_AFTER_SECONDS,
    WorkerFilter,
    WorkPoolFilter,
    WorkQueueFilter,
)
from conveyor.server.database import orm
from conveyor.server.models import work_pools
from conveyor.server.ui import templating
from conveyor.server.ui.common import database

router = APIRouter()

POOLS = 50
QUEUES = 50
WORKERS = 50


@dataclasses.dataclass(frozen=True)
class PoolView:
    pool: orm.WorkPool
    queues: list[orm.WorkQueue]
    workers: list[tuple[orm.Worker, bool]]  # (worker, online)

    @property
    def online(self) -> int:
        return sum(1 for _, up in self.workers if up)


def _read(session: Session) -> list[PoolView]:
    views = []
    for pool in work_pools.filter_work_pools(session, WorkPoolFilter(limit=POOLS)):
        queues = work_pools.filter_work_queues(session, pool.name, WorkQueueFilter(limit=QUEUES))
        workers = work_pools.filter_workers(session, pool.name, WorkerFilter(limit=WORKERS))
        views.append(PoolView(pool, list(queues), workers))
    return views


@router.get("/work-pools")
async def work_pools_page(request: Request) -> Response:
    return templating.page(
        "work_pools.html",
        title="Work pools",
        pools=await database(request).read(_read),
        offline_after=WORKER_OFFLINE_AFTER_SECONDS,
        now=datetime.datetime.now(datetime.timezone.utc),
    )
