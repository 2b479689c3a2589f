"""Running the ``conveyor`` command in-process, for the CLI tests."""

from __future__ import annotations

from typer.testing import CliRunner

from conveyor.cli.main import app

runner = CliRunner()


def invoke(*args: str, code: int = 0) -> str:
    """Run ``conveyor ARGS``; assert its exit code and return its output."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output
