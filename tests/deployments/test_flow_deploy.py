"""``Flow.deploy`` and ``Flow.to_deployment``: the entrypoint and source found from the
flow's file, checked like conveyor.yaml, against the embedded backend."""

from __future__ import annotations

import asyncio
import datetime
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import flow
from conveyor.client.embedded import connect
from conveyor.deployments.entrypoints import load_flow
from conveyor.deployments.errors import DeployError
from conveyor.schemas.deployments import DeploymentRead, WorkPoolCreate
from conveyor.schemas.schedules import IntervalSchedule
from conveyor.settings import Settings

FLOWS = """
from conveyor import flow

@flow
def etl(n: int = 1) -> int:
    return n
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
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("CONVEYOR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "home"))

    async def pool() -> None:
        client = await connect(Settings.from_env())
        try:
            await client.create_work_pool(WorkPoolCreate(name="local"))
        finally:
            await client.aclose()

    asyncio.run(pool())


def read(flow_name: str, name: str) -> DeploymentRead:
    async def get() -> DeploymentRead:
        client = await connect(Settings.from_env())
        try:
            return await client.read_deployment_by_name(flow_name, name)
        finally:
            await client.aclose()

    return asyncio.run(get())


def test_deploy_infers_entrypoint_and_source(tmp_path: Path) -> None:
    code = tmp_path / "project"
    (code / "flows").mkdir(parents=True)
    (code / "flows" / "etl.py").write_text(FLOWS)
    etl = load_flow("flows/etl.py:etl", code)
    deployment_id = etl.deploy(
        "daily",
        work_pool_name="local",
        parameters={"n": 2},
        cron="0 9 * * *",
        schedules=[IntervalSchedule(interval=datetime.timedelta(seconds=60))],
        job_variables={"env": {"A": "1"}},
        tags=["t"],
    )
    deployment = read("etl", "daily")
    assert deployment.id == deployment_id
    assert deployment.entrypoint == "etl.py:etl"
    assert deployment.source is not None
    assert deployment.source.model_dump() == {"kind": "local", "path": str(code / "flows")}
    assert [s.schedule.kind for s in deployment.schedules] == ["interval", "cron"]
    assert (deployment.parameters, deployment.job_variables) == ({"n": 2}, {"env": {"A": "1"}})
    assert deployment.parameter_schema["properties"]["n"]["type"] == "integer"
    # A source higher up: the entrypoint is relative to it.
    etl.deploy("whole", work_pool_name="local", source=str(code))
    assert read("etl", "whole").entrypoint == "flows/etl.py:etl"


def test_deploy_errors_name_the_deployment(tmp_path: Path) -> None:
    (tmp_path / "etl.py").write_text(FLOWS)
    etl = load_flow("etl.py:etl", tmp_path)
    with pytest.raises(DeployError, match=r"'d': work_pool.name: there is no work pool named 'x'"):
        etl.deploy("d", work_pool_name="x")
    with pytest.raises(DeployError, match=r"'d': parameters.n: 'a' is not of type 'integer'"):
        etl.deploy("d", work_pool_name="local", parameters={"n": "a"})
    with pytest.raises(DeployError, match="outside the source directory"):
        etl.deploy("d", work_pool_name="local", source=str(tmp_path / "elsewhere"))

    @flow
    def nested() -> None: ...

    with pytest.raises(DeployError, match="not defined at a module's top level"):
        nested.deploy("d", work_pool_name="local")


def test_to_deployment_has_no_pool(tmp_path: Path) -> None:
    (tmp_path / "etl.py").write_text(FLOWS)
    described = load_flow("etl.py:etl", tmp_path).to_deployment("served", interval=30)
    assert described.spec.work_pool is None
    assert described.spec.entrypoint == "etl.py:etl"
    assert described.spec.schedules == [{"interval": 30}]
