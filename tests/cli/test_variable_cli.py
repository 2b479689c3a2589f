"""``conveyor variable set/get/ls/unset``, against the embedded backend under CONVEYOR_HOME."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app

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


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_set_then_get_prints_a_json_value() -> None:
    invoke("variable", "set", "config", '{"retries": 3, "regions": ["eu", "us"], "x": null}')
    output = invoke("variable", "get", "config")
    assert json.loads(output) == {"retries": 3, "regions": ["eu", "us"], "x": None}


def test_a_value_that_is_not_json_is_stored_as_a_string() -> None:
    invoke("variable", "set", "greeting", "hello world")
    assert json.loads(invoke("variable", "get", "greeting")) == "hello world"


def test_json_scalars_keep_their_type() -> None:
    invoke("variable", "set", "n", "42")
    invoke("variable", "set", "flag", "true")
    invoke("variable", "set", "quoted", '"42"')
    assert json.loads(invoke("variable", "get", "n")) == 42
    assert json.loads(invoke("variable", "get", "flag")) is True
    assert json.loads(invoke("variable", "get", "quoted")) == "42"


def test_set_again_replaces_the_value() -> None:
    invoke("variable", "set", "region", "eu")
    invoke("variable", "set", "region", "us")
    assert json.loads(invoke("variable", "get", "region")) == "us"


def test_ls_shows_name_value_and_tags() -> None:
    invoke("variable", "set", "b-var", "[1, 2]", "--tag", "infra", "--tag", "prod")
    invoke("variable", "set", "a-var", "x" * 100)
    output = invoke("variable", "ls")
    assert "Variables" in output
    assert output.index("a-var") < output.index("b-var")
    assert "[1, 2]" in output
    assert "infra, prod" in output
    assert "x" * 100 not in output  # long values are truncated
    assert "…" in output


def test_unset_removes_the_variable() -> None:
    invoke("variable", "set", "doomed", "1")
    assert "doomed" in invoke("variable", "unset", "doomed")
    result = runner.invoke(app, ["variable", "get", "doomed"])
    assert result.exit_code == 1
    assert "No variable named 'doomed'" in result.output


def test_unset_of_a_missing_variable_exits_1_with_one_line() -> None:
    result = runner.invoke(app, ["variable", "unset", "missing"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error:")
    assert "No variable named 'missing'" in lines[0]


def test_help_lists_the_variable_command() -> None:
    assert "variable" in invoke("--help")
    help_text = invoke("variable", "--help")
    for command in ("set", "get", "ls", "unset"):
        assert command in help_text
