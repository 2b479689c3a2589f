"""ExpiredLeases: expired concurrency leases are deleted, live ones kept, waiters woken."""

from __future__ import annotations

import datetime
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.server.database import orm
from conveyor.server.database.engine import Database
from conveyor.server.models import concurrency_limits as limits
from conveyor.server.services.leases import ExpiredLeases

pytestmark = pytest.mark.anyio

NOW = datetime.datetime.now(datetime.timezone.utc)


def _lease(session: Session, name: str, acquired: datetime.datetime, ttl: float) -> uuid.UUID:
    row = limits.read_limit(session, name, for_update=True)
    assert row is not None
    lease = limits.try_acquire(session, row, 1, "test", ttl, acquired)
    assert lease is not None
    return lease.id


def _lease_ids(session: Session) -> set[uuid.UUID]:
    return set(session.execute(select(orm.ConcurrencyLease.id)).scalars())


async def test_expired_leases_go_and_live_ones_stay(database: Database) -> None:
    for name in ("db", "api", "idle"):
        await database.write(limits.set_limit, name, 5)
    expired = {
        # (Acquiring deletes its limit's expired leases: these overlap, so both remain.)
        await database.write(_lease, "db", NOW - datetime.timedelta(seconds=100), 80),
        await database.write(_lease, "db", NOW - datetime.timedelta(seconds=50), 10),
        await database.write(_lease, "api", NOW - datetime.timedelta(seconds=100), 10),
    }
    live = await database.write(_lease, "idle", NOW, 60)
    freed: list[str] = []
    service = ExpiredLeases(database, on_freed=freed.append, batch_size=2)

    assert await service.run_once(NOW) == 2
    assert await service.run_once(NOW) == 1
    assert await service.run_once(NOW) == 0
    assert await database.read(_lease_ids) == {live}
    assert len(expired) == 3
    # Each pass wakes the waiters of the limits it freed slots of, and only those.
    assert set(freed) == {"api", "db"}
