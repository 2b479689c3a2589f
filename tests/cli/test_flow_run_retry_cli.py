"""``conveyor flow-run retry``: a finished deployment run is scheduled again; anything it
cannot retry is one clear line on stderr and exit 1 (embedded backend under CONVEYOR_HOME)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.client.api import ConveyorClient
from conveyor.client.embedded import run_with_client
from conveyor.schemas.api import FlowRunCreate
from conveyor.schemas.deployments import DeploymentCreate
from conveyor.schemas.states import Failed

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("CONVEYOR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "300")


def _failed_run(*, deployed: bool) -> uuid.UUID:
    async def make(client: ConveyorClient) -> uuid.UUID:
        if deployed:
            spec = DeploymentCreate(flow_name="etl", name="daily", entrypoint="flows.py:etl")
            deployment = await client.deploy(spec)
            run_id = (await client.create_flow_run_from_deployment(deployment.id)).id
        else:
            body = FlowRunCreate(flow_name="etl", name="local-run")
            run_id = (await client.create_flow_run(body)).id
        await client.set_flow_run_state(run_id, Failed(message="boom"), force=True)
        return run_id

    return run_with_client(make)


def test_retry_schedules_a_failed_deployment_run_again() -> None:
    run_id = _failed_run(deployed=True)
    result = runner.invoke(app, ["flow-run", "retry", str(run_id)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Retrying flow run {run_id}: it is AwaitingRetry, due now")
    run = run_with_client(lambda client: client.read_flow_run(run_id))
    assert (run.state_type, run.state_name) == ("SCHEDULED", "AwaitingRetry")


def test_a_run_that_cannot_be_retried_is_one_line_and_exit_1() -> None:
    run_id = _failed_run(deployed=False)
    result = runner.invoke(app, ["flow-run", "retry", str(run_id)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: Run 'local-run' was not made from a deployment, so no worker can start it again; "
        "run its flow again instead. (HTTP 409)"
    ]


@pytest.mark.parametrize(
    ("arg", "error"),
    [
        ("not-an-id", "Error: 'not-an-id' is not a flow run id"),
        (str(uuid.UUID(int=1)), f"Error: No flow run with id {uuid.UUID(int=1)}. (HTTP 404)"),
    ],
)
def test_bad_ids_are_one_line_and_exit_1(arg: str, error: str) -> None:
    result = runner.invoke(app, ["flow-run", "retry", arg])
    assert result.exit_code == 1
    assert result.stderr.startswith(error), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
