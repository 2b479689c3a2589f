"""Migrations on SQLite and PostgreSQL: they build exactly the ORM's schema, safely.

``compare_metadata`` pins migration == ORM as alembic's autogenerate sees it; the snapshot
test also pins what autogenerate does not compare (constraint names, ON DELETE actions,
column order, server-side defaults).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    bindparam,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

import conveyor
from conveyor.server.database.engine import Database
from conveyor.server.database.migrate import (
    MigrationError,
    _lock_key,
    alembic_config,
    current_revision,
    head_revision,
    reset,
    upgrade,
)
from conveyor.server.database.orm import Base, Flow, FlowRun
from conveyor.server.database.types import JSONColumn, Timestamp

pytestmark = pytest.mark.anyio

TABLES = {
    "flows",
    "flow_runs",
    "flow_run_states",
    "task_runs",
    "logs",
    "variables",
    "artifacts",
    "concurrency_limits",
    "concurrency_leases",
    "work_pools",
    "work_queues",
    "workers",
    "deployments",
    "deployment_schedules",
}


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, Base.metadata))


def _snapshot(connection: Connection) -> dict[str, Any]:
    """Everything reflection tells about each table, in a comparable form."""
    inspector = inspect(connection)
    tables: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        tables[table] = {
            "columns": [
                (c["name"], repr(c["type"]), c["nullable"], c.get("default"))
                for c in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table),
            "foreign_keys": sorted(
                (fk["name"] or "", fk["constrained_columns"], fk["referred_table"], fk["options"])
                for fk in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (ix["name"] or "", ix["column_names"], ix["unique"])
                for ix in inspector.get_indexes(table)
            ),
            "unique": sorted(
                (uq["name"] or "", uq["column_names"])
                for uq in inspector.get_unique_constraints(table)
            ),
        }
    return tables


async def _run(url: str, fn: Callable[[Connection], Any]) -> Any:
    database = Database(url)
    try:
        return await database.transaction(fn)
    finally:
        await database.dispose()


async def _table_names(database: Database) -> set[str]:
    names = await database.read(lambda session: inspect(session.connection()).get_table_names())
    return set(names)


async def test_upgrade_builds_exactly_the_orm_schema(empty_database_url: str) -> None:
    database = Database(empty_database_url)
    try:
        assert await current_revision(database) is None
        await upgrade(database)
        assert await current_revision(database) == head_revision()
        assert await _table_names(database) == TABLES | {"alembic_version"}
    finally:
        await database.dispose()
    assert await _run(empty_database_url, _differences) == []


async def test_migrated_schema_matches_create_all_in_every_detail(
    new_database_url: Callable[[], str],
) -> None:
    migrated, created = new_database_url(), new_database_url()
    database = Database(migrated)
    try:
        await upgrade(database)
    finally:
        await database.dispose()
    await _run(created, Base.metadata.create_all)

    from_migration = await _run(migrated, _snapshot)
    from_orm = await _run(created, _snapshot)
    del from_migration["alembic_version"]
    assert from_migration == from_orm


async def test_upgrade_again_is_a_no_op_that_keeps_data(database: Database) -> None:
    await database.write(lambda session: session.add(Flow(name="etl")))
    await upgrade(database)
    await upgrade(database)
    names = await database.read(lambda session: session.scalars(select(Flow.name)).all())
    assert names == ["etl"]
    assert await current_revision(database) == head_revision()


async def test_reset_drops_data_and_unknown_tables(database: Database) -> None:
    def add_data(session: Session) -> None:
        session.add(Flow(name="etl"))
        session.execute(text("CREATE TABLE leftover (id INTEGER PRIMARY KEY)"))

    await database.write(add_data)
    await reset(database)
    count = await database.read(lambda s: s.scalar(select(func.count()).select_from(Flow)))
    assert count == 0
    assert await _table_names(database) == TABLES | {"alembic_version"}
    assert await current_revision(database) == head_revision()


async def test_a_failing_migration_leaves_nothing_behind(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    # The first index comes after two tables were created: those must be rolled back.
    monkeypatch.setattr(Operations, "create_index", fail)
    database = Database(empty_database_url)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            await upgrade(database)
        assert await _table_names(database) == set()
    finally:
        await database.dispose()


async def test_reset_migrates_an_empty_database(empty_database_url: str) -> None:
    database = Database(empty_database_url)
    try:
        await reset(database)
        assert await current_revision(database) == head_revision()
    finally:
        await database.dispose()


async def test_concurrent_upgrades_in_one_process_all_succeed(empty_database_url: str) -> None:
    # Separate Database objects: separate pools, so the lock is the database's, not ours.
    databases = [Database(empty_database_url) for _ in range(4)]
    try:
        await asyncio.gather(*(upgrade(database) for database in databases))
        assert await current_revision(databases[0]) == head_revision()
        assert await _table_names(databases[0]) == TABLES | {"alembic_version"}
    finally:
        for database in databases:
            await database.dispose()


async def test_concurrent_upgrades_of_different_databases_in_one_process(
    new_database_url: Callable[[], str],
) -> None:
    # No database lock is shared here; what must not be shared is alembic's global state.
    databases = [Database(new_database_url()) for _ in range(3)]
    try:
        await asyncio.gather(*(upgrade(database) for database in databases))
        for database in databases:
            assert await current_revision(database) == head_revision()
            assert await _table_names(database) == TABLES | {"alembic_version"}
    finally:
        for database in databases:
            await database.dispose()


# Each child imports everything first, says "ready", then waits for "go" on stdin, so
# that all of them start migrating at the same moment rather than a process start apart.
_CHILD = """
import asyncio, sys
import conveyor
from conveyor.server.database.engine import Database
from conveyor.server.database.migrate import upgrade

async def main(url: str) -> None:
    database = Database(url)
    try:
        await upgrade(database)
    finally:
        await database.dispose()

print("ready", flush=True)
sys.stdin.readline()
asyncio.run(main(sys.argv[1]))
print("done", flush=True)
"""


def test_concurrent_upgrades_in_separate_processes_all_succeed(empty_database_url: str) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, empty_database_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = [child.communicate(timeout=60) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for child, (stdout, stderr) in zip(children, results, strict=True):
        assert child.returncode == 0, stderr
        assert stdout.strip() == "done"
    assert asyncio.run(_run(empty_database_url, _differences)) == []


async def test_upgrade_refuses_a_revision_it_does_not_know(database: Database) -> None:
    await database.write(
        lambda session: session.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    )
    with pytest.raises(MigrationError, match=r"revision 'f00d'.*newer Conveyor"):
        await upgrade(database)
    # reset is the way out, and leaves a usable database.
    await reset(database)
    assert await current_revision(database) == head_revision()


async def test_downgrade_to_base_removes_every_table(database: Database) -> None:
    def downgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "base")

    await database.transaction(downgrade)
    assert await _table_names(database) == {"alembic_version"}
    assert await current_revision(database) is None
    await upgrade(database)
    assert await current_revision(database) == head_revision()


def test_one_head_and_the_migration_files_ship_with_the_package() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [head_revision()]
    assert [rev.revision for rev in script.walk_revisions()][-1] == "0001"
    # Inside the package, so the wheel carries them and no alembic.ini is needed.
    assert Path(script.dir) == Path(conveyor.__file__).parent / "server/database/migrations"
    assert (Path(script.dir) / "script.py.mako").is_file()


@pytest.mark.parametrize("url", ["sqlite:///unused.db", "postgresql+asyncpg://u@localhost/unused"])
def test_offline_mode_renders_sql(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    command.upgrade(alembic_config(url), "head", sql=True)
    sql = capsys.readouterr().out
    assert "CREATE TABLE flow_runs" in sql
    assert "CONSTRAINT fk_flow_runs__flow_id__flows" in sql
    json_type = "JSONB" if url.startswith("postgresql") else "JSON"
    assert f"tags {json_type} NOT NULL" in sql


def test_lock_keys_differ_per_schema() -> None:
    keys = {_lock_key(f"t_{uuid.uuid4().hex}") for _ in range(100)}
    assert len(keys) == 100
    assert all(-(2**63) <= key < 2**63 for key in keys)


def test_the_fast_head_check_knows_the_newest_revision() -> None:
    # upgrade() skips alembic when alembic_version says HEAD_REVISION; a new migration
    # must move it, or databases would never be upgraded.
    from conveyor.server.database.migrate import HEAD_REVISION

    assert head_revision() == HEAD_REVISION


def _revision_0004_tables() -> tuple[Table, ...]:
    """The tables 0005 reads, as 0004 left them (only the columns the test writes)."""
    metadata = MetaData()
    uuid_, json_, ts, text_, int_ = Uuid(), JSONColumn, Timestamp(), String(), Integer()
    flows = Table(
        "flows",
        metadata,
        *(
            Column(c, t)
            for c, t in (("id", uuid_), ("name", text_), ("tags", json_), ("created", ts))
        ),
    )
    flow_runs = Table(
        "flow_runs",
        metadata,
        *(
            Column(c, t)
            for c, t in (
                ("id", uuid_),
                ("flow_id", uuid_),
                ("name", text_),
                ("parameters", json_),
                ("tags", json_),
                ("retries", int_),
                ("retry_delay_seconds", Float()),
                ("run_count", int_),
                ("created", ts),
                ("updated", ts),
            )
        ),
    )
    task_runs = Table(
        "task_runs",
        metadata,
        *(
            Column(c, t)
            for c, t in (
                ("id", uuid_),
                ("flow_run_id", uuid_),
                ("name", text_),
                ("task_key", text_),
                ("dynamic_key", text_),
                ("tags", json_),
                ("task_inputs", json_),
                ("state_seq", int_),
                ("run_count", int_),
                ("created", ts),
            )
        ),
    )
    states = Table(
        "task_run_states",
        metadata,
        *(
            Column(c, t)
            for c, t in (
                ("task_run_id", uuid_),
                ("seq", int_),
                ("type", text_),
                ("name", text_),
                ("message", text_),
                ("timestamp", ts),
                ("details", json_),
                ("result_ref", json_),
            )
        ),
    )
    return flows, flow_runs, task_runs, states


def _to_revision(revision: str) -> Callable[[Connection], None]:
    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    return run


async def test_0005_moves_each_task_run_state_history_into_its_row(
    empty_database_url: str,
) -> None:
    """Histories recorded before 0005 survive it, in seq order, with nothing lost."""
    database = Database(empty_database_url)
    try:
        await database.transaction(_to_revision("0004"))

        def seed(connection: Connection) -> None:
            flow, run = uuid.uuid4(), uuid.uuid4()
            tasks = [uuid.uuid4(), uuid.uuid4()]
            created = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
            flows, flow_runs, task_runs, states = _revision_0004_tables()
            connection.execute(insert(flows).values(id=flow, name="etl", tags=[], created=created))
            connection.execute(
                insert(flow_runs).values(
                    id=run,
                    flow_id=flow,
                    name="r",
                    parameters={},
                    tags=[],
                    retries=0,
                    retry_delay_seconds=0.0,
                    run_count=1,
                    created=created,
                    updated=created,
                )
            )
            for n, task in enumerate(tasks):
                connection.execute(
                    insert(task_runs).values(
                        id=task,
                        flow_run_id=run,
                        name=f"t-{n}",
                        task_key="t",
                        dynamic_key=str(n),
                        tags=[],
                        task_inputs=[],
                        state_seq=2,
                        run_count=1,
                        created=created,
                    )
                )
            # The first task has two states, stored out of order; the second has none.
            ref = {"storage": "/r", "key": "k", "serializer": "json"}
            for seq, type_, details, result_ref, message in (
                (2, "COMPLETED", {"task_run_id": str(tasks[0]), "cache_key": "c"}, ref, None),
                (1, "RUNNING", {"task_run_id": str(tasks[0])}, None, "go"),
            ):
                connection.execute(
                    insert(states).values(
                        task_run_id=tasks[0],
                        seq=seq,
                        type=type_,
                        name=type_.title(),
                        message=message,
                        details=details,
                        result_ref=result_ref,
                        timestamp=created + datetime.timedelta(seconds=seq, microseconds=5),
                    )
                )

        await database.transaction(seed)
        await upgrade(database)
        rows = await database.read(
            lambda s: s.execute(text("SELECT name, states FROM task_runs ORDER BY name")).all()
        )
    finally:
        await database.dispose()
    histories = {name: json.loads(h) if isinstance(h, str) else h for name, h in rows}
    assert histories["t-1"] == []
    assert histories["t-0"] == [
        {
            "seq": 1,
            "type": "RUNNING",
            "name": "Running",
            "timestamp": "2026-01-01T00:00:01.000005+00:00",
            "message": "go",
        },
        {
            "seq": 2,
            "type": "COMPLETED",
            "name": "Completed",
            "timestamp": "2026-01-01T00:00:02.000005+00:00",
            "details": {"cache_key": "c"},
            "result_ref": {"storage": "/r", "key": "k", "serializer": "json"},
        },
    ]


async def test_0006_keeps_existing_runs_and_gives_them_the_new_columns(
    empty_database_url: str,
) -> None:
    """Runs recorded before 0006 survive it with empty job variables, not auto-scheduled;
    and the new unique index lets many runs without an idempotency key share a deployment."""
    database = Database(empty_database_url)
    flow, run = uuid.uuid4(), uuid.uuid4()
    deployment = uuid.uuid4()
    created = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    try:
        await database.transaction(_to_revision("0005"))

        def seed(connection: Connection) -> None:
            flows, flow_runs, _, _ = _revision_0004_tables()
            connection.execute(insert(flows).values(id=flow, name="etl", tags=[], created=created))
            for run_id in (run, uuid.uuid4()):
                connection.execute(
                    insert(flow_runs).values(
                        id=run_id,
                        flow_id=flow,
                        name="r",
                        parameters={"x": 1},
                        tags=[],
                        retries=0,
                        retry_delay_seconds=0.0,
                        run_count=0,
                        created=created,
                        updated=created,
                    )
                )
            # Two runs of one deployment, neither with an idempotency key.
            statement = text("UPDATE flow_runs SET deployment_id = :d")
            connection.execute(
                statement.bindparams(bindparam("d", type_=Uuid())), {"d": deployment}
            )

        await database.transaction(seed)
        await upgrade(database)
        assert await current_revision(database) == "0006"

        def read(session: Session) -> list[tuple[Any, ...]]:
            query = select(
                FlowRun.id, FlowRun.parameters, FlowRun.job_variables, FlowRun.auto_scheduled
            ).order_by(FlowRun.id)
            return [tuple(row) for row in session.execute(query)]

        rows = await database.read(read)
    finally:
        await database.dispose()
    assert len(rows) == 2
    assert {row[0] for row in rows} >= {run}
    assert all(row[1:] == ({"x": 1}, {}, False) for row in rows)
