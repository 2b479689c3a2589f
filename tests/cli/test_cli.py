"""The ``conveyor`` command: help, version, config view, errors, and a fast --help."""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import conveyor
from conveyor.cli.main import SETTING_ENV_VARS, app
from conveyor.settings import Settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CONVEYOR_* variables from the developer's shell; HOME in a temp dir; wide output."""
    for name in list(os.environ):
        if name.startswith("CONVEYOR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")


def row(output: str, setting: str) -> list[str]:
    """The cells of the config table's row for ``setting``."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if cells and cells[0] == setting:
            return cells
    raise AssertionError(f"no row for {setting} in:\n{output}")


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    assert "version" in result.stdout
    assert "config" in result.stdout


def test_version_shows_conveyor_python_and_platform() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0, result.output
    assert conveyor.__version__ in result.stdout
    assert platform.python_version() in result.stdout
    assert "Platform:" in result.stdout


def test_every_setting_has_an_environment_variable() -> None:
    nested = {"services"}  # several variables, each shown and known (see below)
    assert set(SETTING_ENV_VARS) == {f.name for f in dataclasses.fields(Settings)} - nested


def test_config_view_shows_the_server_services_settings() -> None:
    env = {"CONVEYOR_SERVER_RETENTION_DAYS": "7", "CONVEYOR_SERVER_SERVICES_ENABLED": "false"}
    result = runner.invoke(app, ["config", "view"], env=env)
    assert result.exit_code == 0, result.output
    assert row(result.stdout, "CONVEYOR_SERVER_RETENTION_DAYS")[1:] == ["7.0", "env"]
    assert row(result.stdout, "CONVEYOR_SERVER_SERVICES_ENABLED")[1:] == ["False", "env"]
    assert row(result.stdout, "CONVEYOR_SERVER_SERVICES_LATE_RUNS_INTERVAL_SECONDS")[1:] == [
        "5.0",
        "default",
    ]
    assert "not a Conveyor setting" not in result.stderr


def test_config_view_shows_defaults(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "view"])
    assert result.exit_code == 0, result.output
    for env_var in SETTING_ENV_VARS.values():
        assert row(result.stdout, env_var)[2] == "default"
    assert row(result.stdout, "CONVEYOR_HOME")[1] == str(tmp_path / ".conveyor")
    assert row(result.stdout, "CONVEYOR_RESULT_STORAGE")[1] == str(tmp_path / ".conveyor/storage")
    assert row(result.stdout, "CONVEYOR_API_URL")[1] == "not set"
    assert result.stderr == ""


def test_config_view_shows_values_from_the_environment(tmp_path: Path) -> None:
    home = tmp_path / "elsewhere"
    env = {
        "CONVEYOR_HOME": str(home),
        "CONVEYOR_PERSIST_RESULTS": "true",
        "CONVEYOR_LOGGING_LEVEL": "debug",
        "CONVEYOR_API_URL": "",  # empty means unset, as in Settings.from_env()
    }
    result = runner.invoke(app, ["config", "view"], env=env)
    assert result.exit_code == 0, result.output
    assert row(result.stdout, "CONVEYOR_HOME")[1:] == [str(home), "env"]
    assert row(result.stdout, "CONVEYOR_PERSIST_RESULTS")[1:] == ["True", "env"]
    assert row(result.stdout, "CONVEYOR_LOGGING_LEVEL")[1:] == ["DEBUG", "env"]
    assert row(result.stdout, "CONVEYOR_API_URL")[1:] == ["not set", "default"]
    # The default result storage follows CONVEYOR_HOME.
    assert row(result.stdout, "CONVEYOR_RESULT_STORAGE")[1:] == [str(home / "storage"), "default"]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CONVEYOR_LOGGING_LEVEL", "loud", "CONVEYOR_LOGGING_LEVEL='LOUD' is not a logging level"),
        ("CONVEYOR_PERSIST_RESULTS", "maybe", "CONVEYOR_PERSIST_RESULTS='maybe' is not a boolean"),
    ],
)
def test_config_view_rejects_unusable_values(name: str, value: str, expected: str) -> None:
    result = runner.invoke(app, ["config", "view"], env={name: value})
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert expected in lines[0]


def test_config_view_warns_about_unknown_variables_and_serializers() -> None:
    env = {"CONVEYOR_PERSIST_RESULT": "true", "CONVEYOR_RESULT_SERIALIZER": "yaml"}
    result = runner.invoke(app, ["config", "view"], env=env)
    assert result.exit_code == 0, result.output
    assert "Warning: CONVEYOR_PERSIST_RESULT is not a Conveyor setting" in result.stderr
    assert "Warning: CONVEYOR_RESULT_SERIALIZER='yaml' is not built in" in result.stderr


def test_config_view_accepts_serializer_names_in_any_case() -> None:
    result = runner.invoke(app, ["config", "view"], env={"CONVEYOR_RESULT_SERIALIZER": "JSON"})
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_unknown_command_is_a_usage_error() -> None:
    result = runner.invoke(app, ["bogus"])
    assert result.exit_code == 2
    assert "No such command 'bogus'" in result.stderr


def _console_script() -> Path:
    script = Path(sys.executable).parent / "conveyor"
    if not script.exists():
        pytest.skip("the conveyor console script is not installed next to this Python")
    return script


def test_console_script_help() -> None:
    proc = subprocess.run(
        [str(_console_script()), "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage: conveyor" in proc.stdout
    assert "config" in proc.stdout


def test_help_loads_neither_the_engine_nor_pydantic() -> None:
    # `conveyor --help` must stay fast: only typer (and rich, to render help) may load.
    code = (
        "import sys\n"
        "sys.argv = ['conveyor', '--help']\n"
        "from conveyor.cli.main import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('pydantic', 'conveyor.engine', 'conveyor.schemas', 'distributed', 'fsspec')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "[]"
