"""Concurrency limits: at most ``limit`` slots held at once, by leases that expire.

A lease counts until it is released or its ``expires`` passes, so a holder that crashes
frees its slots one TTL later. Expired leases are deleted opportunistically, whenever a
slot of their limit is acquired, and by the server's ExpiredLeases service (for limits
nobody acquires any more).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, Table, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from conveyor.server.database import orm


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def set_limit(session: Session, name: str, limit: int) -> orm.ConcurrencyLimit:
    """Create the limit, or change its limit (one statement, as for variables)."""
    table = cast(Table, orm.ConcurrencyLimit.__table__)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    statement = insert(table).values(
        id=uuid.uuid4(), name=name, limit=limit, created=now, updated=now
    )
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.name],
        set_={"limit": statement.excluded.limit, "updated": statement.excluded.updated},
    )
    session.execute(statement)
    row = read_limit(session, name)
    assert row is not None
    return row


def read_limit(
    session: Session, name: str, *, for_update: bool = False
) -> orm.ConcurrencyLimit | None:
    query = (
        select(orm.ConcurrencyLimit)
        .where(orm.ConcurrencyLimit.name == name)
        .execution_options(populate_existing=True)
    )
    if for_update:
        # PostgreSQL: acquirers of one limit queue here. SQLite ignores it: the write
        # transaction (BEGIN IMMEDIATE) already serialises them.
        query = query.with_for_update()
    return (session.execute(query)).scalar_one_or_none()


def active_slots(
    session: Session, limit_ids: Sequence[uuid.UUID], now: datetime.datetime
) -> dict[uuid.UUID, int]:
    """Slots held by unexpired leases, per limit."""
    if not limit_ids:
        return {}
    lease = orm.ConcurrencyLease
    result = session.execute(
        select(lease.limit_id, func.sum(lease.slots))
        .where(lease.limit_id.in_(limit_ids), lease.expires > now)
        .group_by(lease.limit_id)
    )
    return {limit_id: int(total or 0) for limit_id, total in result.all()}


def list_limits(session: Session, limit: int, offset: int) -> Sequence[orm.ConcurrencyLimit]:
    result = session.execute(
        select(orm.ConcurrencyLimit).order_by(orm.ConcurrencyLimit.name).limit(limit).offset(offset)
    )
    return result.scalars().all()


def delete_limit(session: Session, name: str) -> bool:
    result = session.execute(delete(orm.ConcurrencyLimit).where(orm.ConcurrencyLimit.name == name))
    return bool(getattr(result, "rowcount", 0))


def reset_limit(session: Session, name: str) -> bool:
    """Drop every lease of the limit; False when there is no such limit."""
    row = read_limit(session, name, for_update=True)
    if row is None:
        return False
    session.execute(delete(orm.ConcurrencyLease).where(orm.ConcurrencyLease.limit_id == row.id))
    return True


def try_acquire(
    session: Session,
    row: orm.ConcurrencyLimit,
    slots: int,
    holder: str | None,
    ttl_seconds: float,
    now: datetime.datetime,
) -> orm.ConcurrencyLease | None:
    """A lease of ``slots`` slots if they are free now, else None. ``row`` must have been
    read with ``for_update`` in this (write) transaction, which makes this atomic."""
    session.execute(
        delete(orm.ConcurrencyLease).where(
            orm.ConcurrencyLease.limit_id == row.id, orm.ConcurrencyLease.expires <= now
        )
    )
    held = (active_slots(session, [row.id], now)).get(row.id, 0)
    if held + slots > row.limit:
        return None
    lease = orm.ConcurrencyLease(
        id=uuid.uuid4(),
        limit_id=row.id,
        slots=slots,
        holder=holder,
        expires=now + datetime.timedelta(seconds=ttl_seconds),
        created=now,
    )
    session.add(lease)
    session.flush()
    return lease


def renew_lease(
    session: Session, lease_id: uuid.UUID, ttl_seconds: float, now: datetime.datetime
) -> orm.ConcurrencyLease | None:
    """Push the lease's expiry to ``now + ttl``; None when it is gone or already expired
    (its slots may have been taken since)."""
    lease = session.get(orm.ConcurrencyLease, lease_id, populate_existing=True)
    if lease is None or lease.expires <= now:
        return None
    lease.expires = now + datetime.timedelta(seconds=ttl_seconds)
    session.flush()
    return lease


def release_lease(session: Session, lease_id: uuid.UUID) -> str | None:
    """Delete the lease; the name of its limit (to wake waiters), or None if it was gone."""
    lease = session.get(orm.ConcurrencyLease, lease_id)
    if lease is None:
        return None
    limit = session.get(orm.ConcurrencyLimit, lease.limit_id)
    session.delete(lease)
    session.flush()
    return limit.name if limit is not None else None


def delete_expired_leases(
    session: Session, now: datetime.datetime, limit: int
) -> tuple[int, set[str]]:
    """Delete up to ``limit`` leases expired by ``now``: how many went, and the names of
    their limits (whose waiters may want to look again)."""
    lease = orm.ConcurrencyLease
    rows = session.execute(
        select(lease.id, orm.ConcurrencyLimit.name)
        .join(orm.ConcurrencyLimit, orm.ConcurrencyLimit.id == lease.limit_id)
        .where(lease.expires <= now)
        .limit(limit)
    ).all()
    if not rows:
        return 0, set()
    # Checked again on delete: a lease renewed since the read is kept.
    result = cast(
        CursorResult[Any],
        session.execute(
            delete(lease).where(lease.id.in_([r.id for r in rows]), lease.expires <= now),
            execution_options={"synchronize_session": False},
        ),
    )
    return int(result.rowcount), {r.name for r in rows}
