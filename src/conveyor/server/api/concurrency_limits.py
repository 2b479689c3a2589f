"""Concurrency limits, addressed by name, and the leases that hold their slots.

Acquiring long-polls: the request waits server-side, woken at once when a slot of its
limit is released (or the limit is reset or deleted) in this process, and re-checking
every second for leases that expired or were released by another server process. It
answers 200 with a lease, or 423 when no slot was free within ``timeout_seconds``: the
client then asks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from sqlalchemy.orm import Session

from conveyor.schemas.api import (
    CONCURRENCY_LIMIT_NAME_PATTERN,
    MAX_PAGE,
    ConcurrencyAcquire,
    ConcurrencyLeaseRead,
    ConcurrencyLeaseRenew,
    ConcurrencyLimitCreate,
    ConcurrencyLimitRead,
)
from conveyor.server.api.deps import get_database
from conveyor.server.database import orm
from conveyor.server.database.engine import Database
from conveyor.server.models import concurrency_limits as limits

router = APIRouter(tags=["concurrency limits"])
DB = Annotated[Database, Depends(get_database)]
Name = Annotated[str, Path(min_length=1, max_length=255, pattern=CONCURRENCY_LIMIT_NAME_PATTERN)]
RECHECK_SECONDS = 1.0


class SlotWaiters:
    """One event per limit name that acquirers are waiting on; set (and replaced) when a
    slot may have been freed."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def event(self, name: str) -> asyncio.Event:
        event = self._events.get(name)
        if event is None:
            event = self._events[name] = asyncio.Event()
        return event

    def notify(self, name: str) -> None:
        event = self._events.pop(name, None)
        if event is not None:
            event.set()


async def _waiters(request: Request) -> SlotWaiters:
    # async: on the event loop, so two requests cannot each make a registry of their own.
    waiters: SlotWaiters | None = getattr(request.app.state, "concurrency_waiters", None)
    if waiters is None:
        waiters = request.app.state.concurrency_waiters = SlotWaiters()
    return waiters


Waiters = Annotated[SlotWaiters, Depends(_waiters)]


def _not_found(name: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"No concurrency limit named {name!r}.")


def _read(row: orm.ConcurrencyLimit, active: dict[uuid.UUID, int]) -> ConcurrencyLimitRead:
    read = ConcurrencyLimitRead.model_validate(row)
    read.active_slots = active.get(row.id, 0)
    return read


@router.post("/concurrency_limits/", response_model=ConcurrencyLimitRead)
async def set_limit(
    body: ConcurrencyLimitCreate, database: DB, waiters: Waiters
) -> ConcurrencyLimitRead:
    """Create the limit, or change the limit of the one with this name."""

    def set_limit(session: Session) -> ConcurrencyLimitRead:
        row = limits.set_limit(session, body.name, body.limit)
        return _read(row, limits.active_slots(session, [row.id], limits.utcnow()))

    result = await database.write(set_limit)
    waiters.notify(body.name)  # a raised limit frees slots
    return result


@router.get("/concurrency_limits/", response_model=list[ConcurrencyLimitRead])
async def list_limits(
    database: DB,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ConcurrencyLimitRead]:
    """Limits sorted by name, with the slots their unexpired leases hold."""

    def read(session: Session) -> list[ConcurrencyLimitRead]:
        rows = limits.list_limits(session, limit, offset)
        active = limits.active_slots(session, [r.id for r in rows], limits.utcnow())
        return [_read(row, active) for row in rows]

    return await database.read(read)


@router.get("/concurrency_limits/{name}", response_model=ConcurrencyLimitRead)
async def read_limit(name: Name, database: DB) -> ConcurrencyLimitRead:

    def read(session: Session) -> ConcurrencyLimitRead:
        row = limits.read_limit(session, name)
        if row is None:
            raise _not_found(name)
        return _read(row, limits.active_slots(session, [row.id], limits.utcnow()))

    return await database.read(read)


@router.delete("/concurrency_limits/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_limit(name: Name, database: DB, waiters: Waiters) -> Response:
    """Remove the limit and its leases; waiting acquirers get 404."""
    deleted = await database.write(limits.delete_limit, name)
    if not deleted:
        raise _not_found(name)
    waiters.notify(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/concurrency_limits/{name}/reset", status_code=status.HTTP_204_NO_CONTENT)
async def reset_limit(name: Name, database: DB, waiters: Waiters) -> Response:
    """Drop every lease of the limit: all its slots are free."""
    found = await database.write(limits.reset_limit, name)
    if not found:
        raise _not_found(name)
    waiters.notify(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/concurrency_limits/{name}/acquire", response_model=ConcurrencyLeaseRead)
async def acquire(
    name: Name, body: ConcurrencyAcquire, database: DB, waiters: Waiters
) -> ConcurrencyLeaseRead:
    """A lease of ``slots`` slots, waiting up to ``timeout_seconds`` for them (423 if not).

    404 when there is no such limit; 409 when it could never grant that many slots."""

    def try_acquire(session: Session) -> ConcurrencyLeaseRead | None:
        row = limits.read_limit(session, name, for_update=True)
        if row is None:
            raise _not_found(name)
        if body.slots > row.limit:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"Concurrency limit {name!r} allows {row.limit} slot(s); "
                f"{body.slots} can never be acquired.",
            )
        lease = limits.try_acquire(
            session, row, body.slots, body.holder, body.ttl_seconds, limits.utcnow()
        )
        return ConcurrencyLeaseRead.model_validate(lease) if lease is not None else None

    loop = asyncio.get_running_loop()
    deadline = loop.time() + body.timeout_seconds
    while True:
        # Taken before looking, so a release between the look and the wait is not missed.
        event = waiters.event(name)
        result = await database.write(try_acquire)
        if result is not None:
            return result
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise HTTPException(status.HTTP_423_LOCKED, "no slot free within timeout")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), min(RECHECK_SECONDS, remaining))


@router.post("/concurrency_leases/{lease_id}/renew", response_model=ConcurrencyLeaseRead)
async def renew_lease(
    lease_id: uuid.UUID, body: ConcurrencyLeaseRenew, database: DB
) -> ConcurrencyLeaseRead:
    """Extend the lease to ``ttl_seconds`` from now; 404 if it was released or expired."""

    def renew(session: Session) -> ConcurrencyLeaseRead:
        lease = limits.renew_lease(session, lease_id, body.ttl_seconds, limits.utcnow())
        if lease is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"No active concurrency lease {lease_id}."
            )
        return ConcurrencyLeaseRead.model_validate(lease)

    return await database.write(renew)


@router.delete("/concurrency_leases/{lease_id}", status_code=status.HTTP_204_NO_CONTENT)
async def release_lease(lease_id: uuid.UUID, database: DB, waiters: Waiters) -> Response:
    """Free the lease's slots (404 if it was already released, reset or expired away)."""
    name = await database.write(limits.release_lease, lease_id)
    if name is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No concurrency lease {lease_id}.")
    waiters.notify(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
