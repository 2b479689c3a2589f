"""Work pools, their queues and workers, addressed by name.

Unknown pools and queues are 404s, duplicate names 409s (``models/errors.py`` maps what
the query functions raise). A pool that deployments use cannot be deleted (409 naming
them); a pool's ``default`` queue cannot be deleted either.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from conveyor.schemas.deployments import (
    NAME_PATTERN,
    WorkerFilter,
    WorkerHeartbeat,
    WorkerRead,
    WorkPoolCreate,
    WorkPoolFilter,
    WorkPoolRead,
    WorkPoolUpdate,
    WorkQueueCreate,
    WorkQueueFilter,
    WorkQueueRead,
    WorkQueueUpdate,
)
from conveyor.server.api.deps import get_database
from conveyor.server.database import orm
from conveyor.server.database.engine import Database
from conveyor.server.models import work_pools

router = APIRouter(prefix="/work_pools", tags=["work pools"])
DB = Annotated[Database, Depends(get_database)]
Name = Annotated[str, Path(min_length=1, max_length=255, pattern=NAME_PATTERN)]


def _queue(queue: orm.WorkQueue, pool_name: str) -> WorkQueueRead:
    out = WorkQueueRead.model_validate(queue)
    out.work_pool_name = pool_name
    return out


# -- pools ------------------------------------------------------------------------------
@router.post("/", response_model=WorkPoolRead, status_code=status.HTTP_201_CREATED)
async def create_work_pool(body: WorkPoolCreate, database: DB) -> WorkPoolRead:
    """Create a pool (with its queue ``default``). The base job template defaults to the
    type's; 409 if the name is taken."""
    return WorkPoolRead.model_validate(await database.write(work_pools.create_work_pool, body))


@router.post("/filter", response_model=list[WorkPoolRead])
async def filter_work_pools(body: WorkPoolFilter, database: DB) -> list[WorkPoolRead]:
    rows = await database.read(work_pools.filter_work_pools, body)
    return [WorkPoolRead.model_validate(row) for row in rows]


@router.get("/{name}", response_model=WorkPoolRead)
async def read_work_pool(name: Name, database: DB) -> WorkPoolRead:
    return WorkPoolRead.model_validate(await database.read(work_pools.existing_work_pool, name))


@router.patch("/{name}", response_model=WorkPoolRead)
async def update_work_pool(name: Name, body: WorkPoolUpdate, database: DB) -> WorkPoolRead:
    """Change the fields sent (``null`` clears the limit; a null template restores the
    type's default)."""
    return WorkPoolRead.model_validate(
        await database.write(work_pools.update_work_pool, name, body)
    )


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_work_pool(name: Name, database: DB) -> Response:
    """Delete the pool, its queues and workers; 409 while deployments use it."""
    await database.write(work_pools.delete_work_pool, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- queues -----------------------------------------------------------------------------
@router.post("/{pool}/queues/", response_model=WorkQueueRead, status_code=status.HTTP_201_CREATED)
async def create_work_queue(pool: Name, body: WorkQueueCreate, database: DB) -> WorkQueueRead:
    """Create a queue; without a priority it comes after the pool's other queues."""
    return _queue(await database.write(work_pools.create_work_queue, pool, body), pool)


@router.post("/{pool}/queues/filter", response_model=list[WorkQueueRead])
async def filter_work_queues(
    pool: Name, body: WorkQueueFilter, database: DB
) -> list[WorkQueueRead]:
    """The pool's queues by priority (1 first), then name."""
    rows = await database.read(work_pools.filter_work_queues, pool, body)
    return [_queue(row, pool) for row in rows]


@router.get("/{pool}/queues/{name}", response_model=WorkQueueRead)
async def read_work_queue(pool: Name, name: Name, database: DB) -> WorkQueueRead:
    return _queue(await database.read(work_pools.existing_work_queue, pool, name), pool)


@router.patch("/{pool}/queues/{name}", response_model=WorkQueueRead)
async def update_work_queue(
    pool: Name, name: Name, body: WorkQueueUpdate, database: DB
) -> WorkQueueRead:
    return _queue(await database.write(work_pools.update_work_queue, pool, name, body), pool)


@router.delete("/{pool}/queues/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_work_queue(pool: Name, name: Name, database: DB) -> Response:
    """Delete a queue (not ``default``); its runs and deployments move to ``default``."""
    await database.write(work_pools.delete_work_queue, pool, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- workers ----------------------------------------------------------------------------
@router.post("/{pool}/workers/heartbeat", response_model=WorkerRead)
async def worker_heartbeat(pool: Name, body: WorkerHeartbeat, database: DB) -> WorkerRead:
    """A worker says it is alive (registered on its first heartbeat)."""
    out = WorkerRead.model_validate(
        await database.write_first(work_pools.worker_heartbeat, pool, body.name)
    )
    out.online = True
    return out


@router.post("/{pool}/workers/filter", response_model=list[WorkerRead])
async def filter_workers(pool: Name, body: WorkerFilter, database: DB) -> list[WorkerRead]:
    """The pool's workers, most recently heard from first, each ``online`` or not."""
    rows = await database.read(work_pools.filter_workers, pool, body)
    return [WorkerRead.model_validate(row).model_copy(update={"online": on}) for row, on in rows]
