"""``conveyor deploy``: a conveyor.yaml's deployments, checked in full before any is sent,
against the embedded backend under CONVEYOR_HOME."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.client.embedded import connect
from conveyor.schemas.deployments import DeploymentRead
from conveyor.settings import Settings

runner = CliRunner()

FLOWS = """
from conveyor import flow

@flow
def etl(n: int = 1, label: str = "x") -> int:
    '''Load the day's rows.'''
    return n
"""

GOOD = """
deployments:
  - name: daily
    entrypoint: flows/etl.py:etl
    source: .
    parameters: {n: 3}
    schedules:
      - cron: "0 9 * * *"
        timezone: Europe/London
      - interval: 3600
        active: false
        parameters: {label: hourly}
    work_pool: {name: local, queue: default, job_variables: {env: {STAGE: prod}}}
    tags: [nightly]
    version: "1.2"
  - name: adhoc
    entrypoint: flows/etl.py:etl
    work_pool: {name: local}
"""


@pytest.fixture(autouse=True)
def forget_loaded_flows() -> Iterator[None]:
    """Loaded flow files stay in sys.modules; other tests count them there."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("conveyor_flow_"):
            del sys.modules[name]


@pytest.fixture(autouse=True)
def project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("CONVEYOR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "300")
    code = tmp_path / "project"
    (code / "flows").mkdir(parents=True)
    (code / "flows" / "etl.py").write_text(FLOWS)
    monkeypatch.chdir(code)
    return code


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def deployments() -> list[DeploymentRead]:
    async def read() -> list[DeploymentRead]:
        client = await connect(Settings.from_env())
        try:
            return await client.filter_deployments()
        finally:
            await client.aclose()

    return asyncio.run(read())


def test_deploy_all_from_yaml(project: Path) -> None:
    invoke("work-pool", "create", "local")
    (project / "conveyor.yaml").write_text(GOOD)
    output = invoke("deploy", "--all")
    assert "conveyor deployment run 'etl/daily'" in output
    assert "conveyor worker start --pool local" in output
    adhoc, daily = deployments()
    assert (adhoc.name, daily.name) == ("adhoc", "daily")
    assert daily.source is not None and daily.source.model_dump() == {
        "kind": "local",
        "path": str(project),
    }
    assert daily.parameters == {"n": 3}
    assert daily.parameter_schema["properties"]["n"]["type"] == "integer"
    assert daily.job_variables == {"env": {"STAGE": "prod"}}
    assert (daily.tags, daily.version, daily.description) == (
        ["nightly"],
        "1.2",
        "Load the day's rows.",
    )
    cron, interval = daily.schedules
    assert cron.schedule.model_dump()["cron"] == "0 9 * * *" and cron.active
    assert not interval.active and interval.parameters == {"label": "hourly"}
    assert adhoc.schedules == [] and adhoc.work_pool_name == "local"
    # Deploying again replaces, keeping the ids.
    invoke("deploy", "daily", "--file", str(project / "conveyor.yaml"))
    assert [d.id for d in deployments()] == [adhoc.id, daily.id]


def test_a_single_deployment_at_the_top_level_and_served(project: Path) -> None:
    (project / "conveyor.yaml").write_text("name: once\nentrypoint: flows/etl.py:etl\n")
    assert "- (served)" in invoke("deploy")
    (only,) = deployments()
    assert (only.flow_name, only.name, only.work_pool_name) == ("etl", "once", None)


def test_choosing_deployments(project: Path) -> None:
    invoke("work-pool", "create", "local")
    (project / "conveyor.yaml").write_text(GOOD)
    error = invoke("deploy", code=1)
    assert "declares 2 deployments (daily, adhoc); name the ones to deploy, or pass --all" in error
    assert "No deployment named 'nope'" in invoke("deploy", "nope", code=1)
    invoke("deploy", "adhoc")
    assert [d.name for d in deployments()] == ["adhoc"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('"0 9 * * *"', '"0 99 * * *"', "Deployment 'daily': schedules[0].cron: '0 99 * * *' is"),
        ("{name: local}", "{name: gone}", "Deployment 'adhoc': work_pool.name: there is no work"),
        ("STAGE: prod}", "STAGE: 1}", "Deployment 'daily': work_pool.job_variables.env.STAGE:"),
        ("{env:", "{image: x, env:", "work_pool.job_variables.image: is not a variable"),
        ("n: 3", "n: three", "Deployment 'daily': parameters.n: 'three' is not of type"),
        ("flows/etl.py:etl\n    work", "flows/nope.py:etl\n    work", "Flow file flows/nope.py"),
        (
            "flows/etl.py:etl\n    work",
            "flows/etl.py:elt\n    work",
            "Deployment 'adhoc': entrypoint 'flows/etl.py:elt': flows/etl.py has no attribute",
        ),
        ("tags: [nightly]", "tagz: [nightly]", "deployments[0].tagz: Extra inputs"),
    ],
)
def test_bad_input_is_one_line_and_nothing_is_deployed(
    project: Path, old: str, new: str, message: str
) -> None:
    invoke("work-pool", "create", "local")
    assert old in GOOD
    (project / "conveyor.yaml").write_text(GOOD.replace(old, new, 1))
    output = invoke("deploy", "--all", code=1)
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    assert message in lines[0]
    assert deployments() == []


def test_missing_or_broken_file(project: Path) -> None:
    assert "Cannot read conveyor.yaml" in invoke("deploy", code=1)
    (project / "conveyor.yaml").write_text("deployments: [")
    assert "is not valid YAML" in invoke("deploy", code=1)
