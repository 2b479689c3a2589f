"""The database: SQLite (default) or PostgreSQL, and the one way requests use it.

A request hands ``Database.read`` or ``Database.write`` a plain synchronous function of a
``Session``; the function runs whole, in one transaction, in one hop off the event loop.
Query code is written once, synchronously, for both dialects:

* SQLite: the stdlib driver on worker threads. Writes run on a single writer thread, so
  within one process they queue there instead of in SQLite's busy handler (short state
  changes, ``write_first``, ahead of bulk writes: see ``writer``), and every
  write transaction starts with ``BEGIN IMMEDIATE``, so across processes it queues for
  the write lock up front rather than failing with "database is locked" when a read
  lock cannot be upgraded. WAL lets readers run beside the writer. (An async driver
  would instead hop threads once per statement: a dozen hops per request.)
* PostgreSQL: asyncpg, with the function run through ``AsyncSession.run_sync``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from conveyor.server.database.types import dump_json
from conveyor.server.database.writer import WriterThread

BUSY_TIMEOUT_SECONDS = 60
READER_THREADS = 4

P = ParamSpec("P")
T = TypeVar("T")


def _enable_wal(cursor: Any, operational_error: type[Exception]) -> None:
    # Switching a brand-new file to WAL takes an exclusive lock that the busy handler
    # does not wait for: several first connections at once would see "locked". Retry.
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except operational_error as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_engine(url: str, begin: str) -> Engine:
    engine = create_engine(
        url,
        connect_args={"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        json_serializer=dump_json,
        pool_size=READER_THREADS + 1,
    )

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _enable_wal(cursor, engine.dialect.loaded_dbapi.OperationalError)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(begin)

    return engine


def _in_session(
    sessions: sessionmaker[Session], begin: bool, fn: Callable[..., T], *args: Any
) -> T:
    with sessions() as session:
        if not begin:
            return fn(session, *args)
        with session.begin():
            return fn(session, *args)


def _in_transaction(engine: Engine, fn: Callable[[Connection], T]) -> T:
    with engine.begin() as connection:
        return fn(connection)


class Database:
    """Runs a request's database work, reading or writing, on one database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self._sqlite: tuple[Engine, Engine] | None = None
        self._postgres: AsyncEngine | None = None
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # Any sqlite URL (sqlite+aiosqlite:// too, as earlier versions wrote) uses the
            # stdlib driver.
            sync_url = parsed.set(drivername="sqlite").render_as_string(hide_password=False)
            reader = _sqlite_engine(sync_url, "BEGIN")
            writer = _sqlite_engine(sync_url, "BEGIN IMMEDIATE")
            self._sqlite = (reader, writer)
            self._read_sessions = sessionmaker(reader, expire_on_commit=False)
            self._write_sessions = sessionmaker(writer, expire_on_commit=False)
            self._readers = concurrent.futures.ThreadPoolExecutor(
                READER_THREADS, thread_name_prefix="conveyor-db-read"
            )
            self._writer = WriterThread("conveyor-db-write")
        else:
            self._postgres = create_async_engine(
                url, pool_size=10, max_overflow=20, pool_pre_ping=True
            )
            self._async_sessions = async_sessionmaker(self._postgres, expire_on_commit=False)

    async def read(
        self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(session, *args, **kwargs)`` in a read-only session."""
        return await self._run(False, functools.partial(fn, **kwargs), *args)

    async def write(
        self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(session, *args, **kwargs)`` in a transaction: committed when it returns,
        rolled back when it raises."""
        return await self._run(True, functools.partial(fn, **kwargs), *args)

    async def write_first(
        self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``write``, for a short transaction a run waits on (a state change, a claim, a
        heartbeat): on SQLite it goes before queued ordinary writes (``writer``)."""
        return await self._run(True, functools.partial(fn, **kwargs), *args, urgent=True)

    async def _run(self, write: bool, fn: Callable[..., T], *args: Any, urgent: bool = False) -> T:
        if self._postgres is None:
            if write:
                future = self._writer.submit_ordered(
                    urgent, _in_session, self._write_sessions, True, fn, *args
                )
                return await asyncio.wrap_future(future)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._readers, _in_session, self._read_sessions, False, fn, *args
            )
        async with self._async_sessions() as session:
            if not write:
                return await session.run_sync(fn, *args)
            async with session.begin():
                return await session.run_sync(fn, *args)

    async def transaction(self, fn: Callable[[Connection], T]) -> T:
        """``fn(connection)`` in a write transaction, below the ORM (for migrations)."""
        if self._sqlite is not None:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._writer, _in_transaction, self._sqlite[1], fn)
        assert self._postgres is not None
        async with self._postgres.begin() as connection:
            return await connection.run_sync(fn)

    async def dispose(self) -> None:
        if self._sqlite is not None:
            # Blocking is fine here (it is the end), and needs no other executor: at
            # interpreter exit the default one refuses new work.
            for executor in (self._readers, self._writer):
                executor.shutdown(wait=True)
            for engine in self._sqlite:
                engine.dispose()
        if self._postgres is not None:
            await self._postgres.dispose()
