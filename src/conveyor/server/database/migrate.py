"""Bring a database's tables to the current revision, or wipe and recreate them.

Migrations run inside one transaction that holds a lock for its whole length, so any
number of processes (servers starting together, the CLI, tests) may call ``upgrade`` at
once: the first creates the tables, the others wait and then find nothing to do. Both
dialects have transactional DDL, so a failed migration leaves nothing half-applied.

* SQLite: the writer engine begins every transaction with ``BEGIN IMMEDIATE``, which takes
  the database's write lock up front; others queue in SQLite's busy handler.
* PostgreSQL: ``pg_advisory_xact_lock`` on a key derived from the schema, released at
  commit or rollback, so a crashed migrator cannot leave the lock held.

Within one process a second lock is needed as well: alembic keeps the running migration
in module globals (``alembic.op``, ``alembic.context``), so two migrations in one process
(even of different databases, on different threads) must not interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from conveyor.exceptions import ConveyorError
from conveyor.server.database.engine import Database

if TYPE_CHECKING:
    from alembic.config import Config

# The newest revision. Every process that records runs checks it at start-up, and a
# plain query is ~0.1 s cheaper than loading alembic; a test pins it to alembic's head.
HEAD_REVISION = "0006"

MIGRATIONS = Path(__file__).with_name("migrations")

# A thread lock rather than an asyncio.Lock: it must hold across event loops and threads.
_ALEMBIC_LOCK = threading.Lock()
_LOCK_POLL_SECONDS = 0.01


class MigrationError(ConveyorError):
    """The database cannot be migrated by this version of Conveyor."""


def alembic_config(url: str | None = None) -> Config:
    """Alembic's configuration, built in code so the package needs no alembic.ini.

    ``url`` is only for developers running alembic commands directly (see
    ``migrations/env.py``); ``upgrade`` and ``reset`` hand over their own connection.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url is not None:
        # The options go through ConfigParser interpolation, where "%" is special.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The revision this version of Conveyor migrates to, as alembic works it out."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise MigrationError(f"no migrations found in {MIGRATIONS}")
    return head


def _lock_key(schema: str) -> int:
    """A stable signed 64-bit advisory lock key, one per schema (tests use many)."""
    digest = hashlib.sha256(f"conveyor.migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.asynccontextmanager
async def _alembic_lock() -> AsyncIterator[None]:
    # Polling never blocks the event loop, and a waiter that is cancelled holds nothing.
    while not _ALEMBIC_LOCK.acquire(blocking=False):
        await asyncio.sleep(_LOCK_POLL_SECONDS)
    try:
        yield
    finally:
        _ALEMBIC_LOCK.release()


def _locked(work: Callable[[Connection], None]) -> Callable[[Connection], None]:
    """``work`` run after taking the migration lock inside its transaction.

    On SQLite the transaction itself (the writer's BEGIN IMMEDIATE) is the lock."""

    def run(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            schema = connection.execute(text("SELECT current_schema()")).scalar()
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(str(schema))}
            )
        work(connection)

    return run


def _check_known(connection: Connection) -> None:
    """Refuse, in words, a database last migrated by a newer Conveyor."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        return
    script = ScriptDirectory.from_config(alembic_config())
    if current not in {rev.revision for rev in script.walk_revisions()}:
        raise MigrationError(
            f"the database is at revision {current!r}, which this version of Conveyor "
            f"does not know (its newest is {head_revision()!r}); was it upgraded by a "
            "newer Conveyor?"
        )


def _upgrade_on(connection: Connection) -> None:
    from alembic import command

    _check_known(connection)
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _drop_everything(connection: Connection) -> None:
    # Reflect rather than use orm.Base.metadata: tables a newer or older revision created,
    # and alembic_version itself, must go too.
    metadata = MetaData()
    metadata.reflect(connection)
    metadata.drop_all(connection)


async def upgrade(database: Database) -> None:
    """Migrate to the newest revision; a no-op when already there. Safe to run concurrently."""
    if await _at_head(database):
        return
    async with _alembic_lock():
        await database.transaction(_locked(_upgrade_on))


def _reset_on(connection: Connection) -> None:
    _drop_everything(connection)
    _upgrade_on(connection)


async def reset(database: Database) -> None:
    """Drop every table (data included), then migrate to the newest revision.

    One transaction: a failure leaves the database as it was.
    """
    async with _alembic_lock():
        await database.transaction(_locked(_reset_on))


def _versions(session: Session) -> set[str] | None:
    try:
        result = session.execute(text("SELECT version_num FROM alembic_version"))
    except DBAPIError:  # no alembic_version table: never migrated
        return None
    return set(result.scalars())


async def _at_head(database: Database) -> bool:
    return await database.read(_versions) == {HEAD_REVISION}


def _revision_of(session: Session) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(session.connection()).get_current_revision()


async def current_revision(database: Database) -> str | None:
    """The revision the database is at; None for a database never migrated."""
    return await database.read(_revision_of)
