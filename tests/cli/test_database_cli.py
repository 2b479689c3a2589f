"""``conveyor database upgrade`` and ``conveyor database reset`` (on SQLite files).

The migrations themselves are tested on both dialects in tests/server/database.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from conveyor.cli import database as database_cli
from conveyor.cli.main import app
from conveyor.server.database.engine import Database
from conveyor.server.database.migrate import current_revision, head_revision
from conveyor.server.database.orm import Flow

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CONVEYOR_* variables from the developer's shell; CONVEYOR_HOME in a temp dir."""
    for name in list(os.environ):
        if name.startswith("CONVEYOR_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("CONVEYOR_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "300")
    return home


@pytest.fixture
def url(clean_env: Path) -> str:
    """The URL the commands use by default: SQLite under CONVEYOR_HOME."""
    return f"sqlite:///{clean_env / 'conveyor.db'}"


async def _add_flow(url: str) -> None:
    database = Database(url)
    try:
        await database.write(lambda session: session.add(Flow(name="etl")))
    finally:
        await database.dispose()


async def _state(url: str) -> tuple[str | None, int]:
    database = Database(url)
    try:
        revision = await current_revision(database)
        if revision is None:
            return None, 0
        count = await database.read(lambda s: s.scalar(select(func.count()).select_from(Flow)))
        return revision, count or 0
    finally:
        await database.dispose()


def _upgraded_with_a_flow(url: str) -> None:
    assert runner.invoke(app, ["database", "upgrade"]).exit_code == 0
    asyncio.run(_add_flow(url))


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_upgrade_creates_the_tables_then_has_nothing_to_do(url: str) -> None:
    result = runner.invoke(app, ["database", "upgrade"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"Created the tables of {url} at revision {head_revision()}."
    assert asyncio.run(_state(url)) == (head_revision(), 0)

    again = runner.invoke(app, ["database", "upgrade"])
    assert again.exit_code == 0, again.output
    assert "already at revision" in again.stdout
    assert "nothing to do" in again.stdout


def test_upgrade_uses_conveyor_database_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere' / 'db.sqlite'}"
    result = runner.invoke(app, ["database", "upgrade"], env={"CONVEYOR_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert url in result.stdout
    assert asyncio.run(_state(url)) == (head_revision(), 0)


def test_reset_with_yes_drops_the_data(url: str) -> None:
    _upgraded_with_a_flow(url)
    result = runner.invoke(app, ["database", "reset", "--yes"])
    assert result.exit_code == 0, result.output
    assert f"Reset {url}" in result.stdout
    assert f"revision {head_revision()}" in result.stdout
    assert asyncio.run(_state(url)) == (head_revision(), 0)


def test_reset_without_a_terminal_or_yes_refuses(url: str) -> None:
    _upgraded_with_a_flow(url)
    # CliRunner's stdin is not a terminal, like CI's or a pipe's.
    result = runner.invoke(app, ["database", "reset"], input="y\n")
    assert result.exit_code == 1
    line = _one_error_line(result.stderr)
    assert "refusing to reset" in line
    assert "--yes" in line
    assert asyncio.run(_state(url)) == (head_revision(), 1)


def test_reset_asks_and_goes_ahead_on_yes(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _upgraded_with_a_flow(url)
    monkeypatch.setattr(database_cli, "_stdin_is_interactive", lambda: True)
    result = runner.invoke(app, ["database", "reset"], input="y\n")
    assert result.exit_code == 0, result.output
    assert f"Drop every table in {url}" in result.stdout
    assert asyncio.run(_state(url)) == (head_revision(), 0)


def test_reset_declined_changes_nothing(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _upgraded_with_a_flow(url)
    monkeypatch.setattr(database_cli, "_stdin_is_interactive", lambda: True)
    result = runner.invoke(app, ["database", "reset"], input="n\n")
    assert result.exit_code == 1
    assert "not changed" in _one_error_line(result.stderr)
    assert asyncio.run(_state(url)) == (head_revision(), 1)


def test_unreachable_database_is_one_line_without_the_password() -> None:
    env = {"CONVEYOR_DATABASE_URL": "postgresql+asyncpg://conveyor:s3cret@127.0.0.1:1/conveyor"}
    result = runner.invoke(app, ["database", "upgrade"], env=env)
    assert result.exit_code == 1
    line = _one_error_line(result.stderr)
    assert "could not upgrade the database at postgresql+asyncpg://conveyor:***@" in line
    assert "s3cret" not in result.output


def test_an_unsupported_driver_url_gets_a_hint() -> None:
    env = {"CONVEYOR_DATABASE_URL": "postgresql+psycopg2://postgres@127.0.0.1:1/test"}
    result = runner.invoke(app, ["database", "reset", "--yes"], env=env)
    assert result.exit_code == 1
    assert "postgresql+asyncpg://" in _one_error_line(result.stderr)


@pytest.mark.parametrize("driver", ["sqlite", "sqlite+aiosqlite"])
def test_both_sqlite_url_forms_work(driver: str, tmp_path: Path) -> None:
    env = {"CONVEYOR_DATABASE_URL": f"{driver}:///{tmp_path / 'db.sqlite'}"}
    result = runner.invoke(app, ["database", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "db.sqlite").is_file()


def test_help_loads_no_database_library() -> None:
    # `conveyor --help` must stay fast: the database group registers without SQLAlchemy.
    code = (
        "import sys\n"
        "from conveyor.cli.main import main\n"
        "for argv in (['conveyor', '--help'], ['conveyor', 'database', '--help']):\n"
        "    sys.argv = argv\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('sqlalchemy', 'alembic', 'asyncpg', 'aiosqlite', 'conveyor.server')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "upgrade" in proc.stdout
    assert proc.stderr.strip() == "[]"
