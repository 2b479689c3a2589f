"""``conveyor work-pool ...``, ``work-queue ...`` and ``deployment ...``, against the
embedded backend under CONVEYOR_HOME."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.client.embedded import connect
from conveyor.schemas.deployments import DeploymentCreate, DeploymentScheduleCreate
from conveyor.schemas.schedules import IntervalSchedule
from conveyor.settings import Settings

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


def one_line_error(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_work_pool_create_ls_inspect() -> None:
    assert "Created work pool 'local' (process)" in invoke("work-pool", "create", "local")
    invoke("work-pool", "create", "k8s", "--type", "kubernetes", "--concurrency-limit", "3")
    output = invoke("work-pool", "ls")
    assert "Work pools" in output
    assert output.index("k8s") < output.index("local")
    assert "kubernetes" in output
    assert "unlimited" in output
    detail = json.loads(invoke("work-pool", "inspect", "k8s"))
    assert (detail["name"], detail["type"], detail["concurrency_limit"]) == ("k8s", "kubernetes", 3)
    assert "job_manifest" in detail["base_job_template"]["job_configuration"]


def test_work_pool_pause_resume_and_limits() -> None:
    invoke("work-pool", "create", "local", "--paused")
    assert json.loads(invoke("work-pool", "inspect", "local"))["paused"] is True
    assert "Resumed" in invoke("work-pool", "resume", "local")
    assert json.loads(invoke("work-pool", "inspect", "local"))["paused"] is False
    invoke("work-pool", "pause", "local")
    assert json.loads(invoke("work-pool", "inspect", "local"))["paused"] is True
    invoke("work-pool", "set-concurrency-limit", "local", "5")
    assert json.loads(invoke("work-pool", "inspect", "local"))["concurrency_limit"] == 5
    invoke("work-pool", "clear-concurrency-limit", "local")
    detail = json.loads(invoke("work-pool", "inspect", "local"))
    assert (detail["concurrency_limit"], detail["paused"]) == (None, True)


def test_work_pool_errors_are_one_line_with_exit_1() -> None:
    invoke("work-pool", "create", "local")
    duplicate = one_line_error(invoke("work-pool", "create", "local", code=1))
    assert "a work pool named 'local' exists already" in duplicate
    missing = one_line_error(invoke("work-pool", "inspect", "nope", code=1))
    assert "No work pool named 'nope'" in missing
    bad_type = one_line_error(invoke("work-pool", "create", "x", "--type", "lambda", code=1))
    assert "Unknown work pool type 'lambda'" in bad_type
    assert "Deleted work pool 'local'" in invoke("work-pool", "delete", "local")
    one_line_error(invoke("work-pool", "delete", "local", code=1))


def test_work_queues() -> None:
    invoke("work-pool", "create", "local")
    created = invoke("work-queue", "create", "fast", "--pool", "local", "--priority", "1")
    assert "Created queue 'fast' in work pool 'local' (priority 1)" in created
    invoke("work-queue", "create", "slow", "--pool", "local", "--concurrency-limit", "1")
    output = invoke("work-queue", "ls", "--pool", "local")
    assert "Queues of work pool local" in output
    assert output.index("default") < output.index("fast") < output.index("slow")
    invoke("work-queue", "pause", "slow", "--pool", "local")
    detail = json.loads(invoke("work-queue", "inspect", "slow", "--pool", "local"))
    assert (detail["paused"], detail["concurrency_limit"], detail["priority"]) == (True, 1, 2)
    invoke("work-queue", "resume", "slow", "--pool", "local")
    assert json.loads(invoke("work-queue", "inspect", "slow", "-p", "local"))["paused"] is False
    assert "Deleted queue 'slow'" in invoke("work-queue", "delete", "slow", "--pool", "local")
    refused = one_line_error(invoke("work-queue", "delete", "default", "-p", "local", code=1))
    assert "cannot be deleted" in refused
    missing = one_line_error(invoke("work-queue", "ls", "--pool", "nope", code=1))
    assert "No work pool named 'nope'" in missing


def _deploy(name: str, pool: str | None) -> None:
    every_hour = DeploymentScheduleCreate(
        schedule=IntervalSchedule(interval=datetime.timedelta(hours=1))
    )

    async def deploy() -> None:
        client = await connect(Settings.from_env())
        try:
            await client.deploy(
                DeploymentCreate(
                    flow_name="etl",
                    name=name,
                    entrypoint="flows.py:etl",
                    work_pool_name=pool,
                    schedules=[every_hour],
                )
            )
        finally:
            await client.aclose()

    asyncio.run(deploy())


def test_deployments_ls_inspect_pause_resume_delete() -> None:
    invoke("work-pool", "create", "local")
    _deploy("daily", "local")
    _deploy("served", None)
    output = invoke("deployment", "ls")
    assert "etl/daily" in output
    assert "etl/served" in output
    assert "1 active of 1" in output
    assert "etl/served" not in invoke("deployment", "ls", "--pool", "local")

    detail = json.loads(invoke("deployment", "inspect", "etl/daily"))
    assert (detail["flow_name"], detail["work_pool_name"]) == ("etl", "local")
    assert detail["schedules"][0]["schedule"]["interval"] == "PT1H"
    assert "Paused deployment 'etl/daily'" in invoke("deployment", "pause", "etl/daily")
    assert json.loads(invoke("deployment", "inspect", "etl/daily"))["paused"] is True
    invoke("deployment", "resume", "etl/daily")
    assert json.loads(invoke("deployment", "inspect", "etl/daily"))["paused"] is False

    in_use = one_line_error(invoke("work-pool", "delete", "local", code=1))
    assert "etl/daily" in in_use
    assert "Deleted deployment 'etl/daily'" in invoke("deployment", "delete", "etl/daily")
    missing = one_line_error(invoke("deployment", "inspect", "etl/daily", code=1))
    assert "No deployment named etl/daily" in missing
    bad = one_line_error(invoke("deployment", "pause", "daily", code=1))
    assert "write flow-name/deployment-name" in bad
