"""Fixtures for the server tests: each test gets its own empty database, on every backend.

Fixtures (all function-scoped; the backend ones are parametrized, so a test that uses
any of them runs twice, as ``test_x[sqlite]`` and ``test_x[postgresql]``):

* ``dialect: str`` -- ``"sqlite"`` or ``"postgresql"``.
* ``new_database_url: Callable[[], str]`` -- makes another empty, *unmigrated* database
  of that dialect and returns its URL; all are removed after the test.
* ``empty_database_url: str`` -- one such URL.
* ``database_url: str`` -- an empty database migrated to head (for code that opens its
  own ``Database``, e.g. ``create_app(Settings(database_url=...))``).
* ``database: Database`` -- async fixture: a ``Database`` over ``database_url``, disposed
  afterwards. Async tests need ``pytestmark = pytest.mark.anyio`` in their module.
* ``app: FastAPI`` -- async fixture: ``create_app`` over ``database_url``, started.
* ``client: httpx.AsyncClient`` -- async fixture: talks to ``app`` in-process (httpx's
  ASGI transport), base URL ending in ``/api``.

SQLite databases are files in ``tmp_path``. On PostgreSQL (``CONVEYOR_TEST_POSTGRES_URL``,
default ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``) each database is a fresh
schema, made the connection's whole ``search_path`` through the URL, and dropped after the
test: tests can run in parallel and never see other data in that database. When
PostgreSQL is unreachable its tests are skipped, or fail when ``CI`` is set. Run
``pytest -m "not postgresql"`` to leave them out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from conveyor.server.app import create_app
from conveyor.server.database.engine import Database
from conveyor.server.database.migrate import upgrade
from conveyor.settings import Settings

POSTGRES_URL_ENV = "CONVEYOR_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
CONNECT_TIMEOUT_SECONDS = 10


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgresql: runs against the test PostgreSQL server")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    # Only asyncio: the server runs on it, and trio is not installed.
    return "asyncio"


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run set-up work to completion from sync code, or from inside a running event loop
    (``new_database_url()`` called by an async test): on a loop of its own, in a thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coroutine).result()


def _masked(url: str | URL) -> str:
    return make_url(url).render_as_string(hide_password=True)


async def _execute(url: str, *statements: str) -> None:
    # NullPool: nothing outlives this call, so no connection is left to a dropped schema.
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
            await connection.commit()
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The URL of the PostgreSQL test database, checked once per session to be reachable."""
    url = os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL
    try:
        _run(asyncio.wait_for(_execute(url, "SELECT 1"), CONNECT_TIMEOUT_SECONDS))
    except (OSError, asyncio.TimeoutError, SQLAlchemyError) as exc:
        message = (
            f"PostgreSQL at {_masked(url)} is not reachable ({type(exc).__name__}: {exc}); "
            f"start it, or point {POSTGRES_URL_ENV} at one"
        )
        if os.environ.get("CI"):
            # CI promises both backends: a missing server must not pass as skipped tests.
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return url


def _with_search_path(url: str, schema: str) -> str:
    """``url`` with every connection's search_path set to just ``schema``."""
    parsed = make_url(url)
    if parsed.get_driver_name() == "asyncpg":
        # asyncpg takes no "options" argument, and SQLAlchemy passes URL query items to it
        # as keyword arguments; but asyncpg turns unknown query items of a "dsn" into
        # server settings, while the URL's own host, user, ... still take precedence.
        dsn = f"postgresql://?search_path={schema}"
        return parsed.update_query_dict({"dsn": dsn}).render_as_string(hide_password=False)
    # libpq-style drivers (psycopg) take startup options.
    options = f"-csearch_path={schema}"
    return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)],
)
def dialect(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def new_database_url(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[], str]]:
    made: list[str] = []

    def sqlite_url() -> str:
        return f"sqlite:///{tmp_path / f'conveyor-{len(made)}.db'}"

    def postgres_url() -> str:
        admin_url: str = request.getfixturevalue("postgres_url")
        schema = f"t_{uuid.uuid4().hex}"
        _run(_execute(admin_url, f'CREATE SCHEMA "{schema}"'))
        made.append(schema)
        return _with_search_path(admin_url, schema)

    def make() -> str:
        if dialect == "sqlite":
            url = sqlite_url()
            made.append(url)
            return url
        return postgres_url()

    yield make
    if dialect == "postgresql" and made:
        admin_url = request.getfixturevalue("postgres_url")
        # A connection the test left idle in a transaction would block the drop forever.
        drops = [f'DROP SCHEMA IF EXISTS "{schema}" CASCADE' for schema in made]
        _run(_execute(admin_url, "SET lock_timeout = '10s'", *drops))


@pytest.fixture
def empty_database_url(new_database_url: Callable[[], str]) -> str:
    return new_database_url()


async def _migrate(url: str) -> None:
    database = Database(url)
    try:
        await upgrade(database)
    finally:
        await database.dispose()


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    # Sync on purpose, so sync tests (CLI, TestClient) can use it too.
    _run(_migrate(empty_database_url))
    return empty_database_url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def app(database_url: str, tmp_path: Path) -> AsyncIterator[FastAPI]:
    application = create_app(Settings(home=tmp_path, database_url=database_url), migrate=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://conveyor.test/api") as c:
        yield c
