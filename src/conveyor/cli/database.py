"""``conveyor database upgrade`` and ``conveyor database reset``: the server's tables.

Imported by ``conveyor --help``, so only typer is imported at the top; SQLAlchemy and
alembic load when a command runs. Both commands act on ``CONVEYOR_DATABASE_URL`` (default:
SQLite at ``<CONVEYOR_HOME>/conveyor.db``) and print it with any password masked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from conveyor.server.database.engine import Database

database_app = typer.Typer(
    help="Create, upgrade or reset the server's database.",
    no_args_is_help=True,
)

Action = Callable[["Database"], Awaitable[None]]


def _url() -> str:
    from conveyor.settings import Settings

    # Not strict: a bad unrelated setting (say, the logging level) must not block this.
    return Settings.from_env(strict=False).effective_database_url


def _masked(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"  # it may still hold a password: never echo it


def _driver_hint(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        driver = make_url(url).drivername
    except ArgumentError:
        driver = ""
    if driver in ("sqlite", "sqlite+pysqlite", "sqlite+aiosqlite", "postgresql+asyncpg"):
        return ""
    return " (Conveyor needs a sqlite:// or postgresql+asyncpg:// URL)"


def _reason(exc: BaseException) -> str:
    """The error's own message on one line, without SQLAlchemy's SQL and links."""
    from sqlalchemy.exc import DBAPIError

    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    message = " ".join(str(cause).split()) or type(cause).__name__
    return f"{type(cause).__name__}: {message}"


def _migrate(url: str, action: Action, doing: str) -> tuple[str | None, str | None]:
    """Run ``action`` on the database at ``url``; its revision before and after."""
    import asyncio

    from sqlalchemy.exc import SQLAlchemyError

    from conveyor.cli.main import fail
    from conveyor.server.database.engine import Database
    from conveyor.server.database.migrate import MigrationError, current_revision

    async def run() -> tuple[str | None, str | None]:
        database = Database(url)
        try:
            before = await current_revision(database)
            await action(database)
            return before, await current_revision(database)
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except MigrationError as exc:
        fail(f"could not {doing} the database at {_masked(url)}: {exc}")
    # ImportError: a URL naming a driver that is not installed (say, postgresql+psycopg).
    except (SQLAlchemyError, OSError, ImportError) as exc:
        reason = _reason(exc) + _driver_hint(url)
        fail(f"could not {doing} the database at {_masked(url)}: {reason}")


def _stdin_is_interactive() -> bool:
    import sys

    return sys.stdin is not None and sys.stdin.isatty()


@database_app.command("upgrade")
def upgrade_command() -> None:
    """Create the tables, or migrate them to this version of Conveyor. Safe to repeat."""
    from rich.markup import escape

    from conveyor.cli.main import _stdout
    from conveyor.server.database.migrate import upgrade

    url = _url()
    before, after = _migrate(url, upgrade, "upgrade")
    shown = escape(_masked(url))
    if before is None:
        message = f"Created the tables of {shown} at revision {after}."
    elif before == after:
        message = f"{shown} is already at revision {after}; nothing to do."
    else:
        message = f"Upgraded {shown} from revision {before} to {after}."
    _stdout().print(message, soft_wrap=True)


@database_app.command("reset")
def reset_command(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Drop every table, with all flow runs, task runs and logs, and recreate them empty."""
    from rich.markup import escape

    from conveyor.cli.main import _stdout, fail
    from conveyor.server.database.migrate import reset

    url = _url()
    shown = _masked(url)
    if not yes:
        if not _stdin_is_interactive():
            # Nobody can answer a prompt (CI, a pipe, a cron job): never guess "yes".
            fail(f"refusing to reset {shown} without confirmation: pass --yes")
        question = f"Drop every table in {shown}, deleting all its data, and recreate them?"
        if not typer.confirm(question, default=False):
            fail("reset cancelled; the database was not changed")
    _, after = _migrate(url, reset, "reset")
    _stdout().print(
        f"Reset {escape(shown)}: dropped every table and recreated them at revision {after}.",
        soft_wrap=True,
    )
