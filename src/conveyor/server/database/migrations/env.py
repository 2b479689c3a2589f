"""Alembic's environment for Conveyor's migrations, configured in code (no alembic.ini).

At runtime ``conveyor.server.database.migrate`` opens the connection, takes the migration
lock and starts the transaction, then hands the connection over in
``config.attributes["connection"]``; this module only runs the migrations on it.

For developers writing the next revision, the same configuration works from a URL::

    from alembic import command
    from conveyor.server.database.migrate import alembic_config

    command.revision(
        alembic_config("sqlite:///dev.db"), "add deployments",
        rev_id="0002", autogenerate=True,
    )

Autogenerate compares against a database at head, so upgrade ``dev.db`` first; then edit
the result by hand (keep the SQLite and PostgreSQL types of ``types.py``) and check both
dialects with ``pytest tests/server/database``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from conveyor.server.database.orm import Base

config = context.config


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things: autogenerate emits batch operations (copy and
        # move the table), which PostgreSQL runs as plain ALTERs.
        render_as_batch=True,
        compare_type=True,
    )
    # A no-op when migrate.py already began the (locked) transaction.
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url(url: str) -> None:
    from conveyor.server.database.engine import Database

    database = Database(url)
    try:
        await database.transaction(_run_on)
    finally:
        await database.dispose()


# Deliberately no logging.config.fileConfig(): that would reconfigure the logging of the
# process that embeds the migrations (the server, the CLI, tests).
if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    _run_on(given)
else:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url: use migrate.alembic_config(url)")
    asyncio.run(_run_from_url(url))
