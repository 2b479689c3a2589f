"""``conveyor concurrency-limit ...``, against the embedded backend under CONVEYOR_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("CONVEYOR_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("CONVEYOR_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "300")
    return home


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_create_then_ls_and_inspect_show_name_limit_and_active_slots() -> None:
    assert "Set concurrency limit 'db' to 2" in invoke("concurrency-limit", "create", "db", "2")
    invoke("concurrency-limit", "create", "api", "10")
    output = invoke("concurrency-limit", "ls")
    assert "Concurrency limits" in output
    assert "Active slots" in output
    assert output.index("api") < output.index("db")
    assert "10" in output
    inspected = invoke("concurrency-limit", "inspect", "db")
    assert "db" in inspected
    assert "2" in inspected


def test_create_again_changes_the_limit() -> None:
    invoke("concurrency-limit", "create", "db", "2")
    invoke("concurrency-limit", "create", "db", "7")
    assert "7" in invoke("concurrency-limit", "inspect", "db")


def test_reset_and_delete() -> None:
    invoke("concurrency-limit", "create", "db", "1")
    assert "all slots are free" in invoke("concurrency-limit", "reset", "db")
    assert "Deleted" in invoke("concurrency-limit", "delete", "db")
    output = invoke("concurrency-limit", "inspect", "db", code=1)
    assert "No concurrency limit named 'db'" in output


def test_a_negative_limit_is_refused() -> None:
    invoke("concurrency-limit", "create", "db", "-1", code=2)
