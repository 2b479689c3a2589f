"""``conveyor artifact ls/inspect``, against the embedded backend under CONVEYOR_HOME."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.client.embedded import connect
from conveyor.schemas.api import ArtifactCreate, ArtifactRead, ArtifactType, FlowRunCreate
from conveyor.settings import Settings

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


def publish(
    type_: ArtifactType, data: Any, key: str | None = None, with_run: bool = False
) -> ArtifactRead:
    async def run() -> ArtifactRead:
        client = await connect(Settings.from_env())
        try:
            flow_run_id = None
            if with_run:
                run = await client.create_flow_run(FlowRunCreate(flow_name="etl", name="r"))
                flow_run_id = run.id
            body = ArtifactCreate(type=type_, data=data, key=key, flow_run_id=flow_run_id)
            return await client.create_artifact(body)
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_ls_lists_newest_first_and_filters() -> None:
    first = publish(ArtifactType.MARKDOWN, "# one", key="report")
    second = publish(ArtifactType.PROGRESS, 50, key="load", with_run=True)
    output = invoke("artifact", "ls")
    assert str(first.id) in output and str(second.id) in output
    assert output.index(str(second.id)) < output.index(str(first.id))
    assert "markdown" in output and "progress" in output
    assert str(second.flow_run_id) in output

    by_key = invoke("artifact", "ls", "--key", "report")
    assert str(first.id) in by_key and str(second.id) not in by_key
    by_run = invoke("artifact", "ls", "--flow-run", str(second.flow_run_id))
    assert str(second.id) in by_run and str(first.id) not in by_run
    limited = invoke("artifact", "ls", "--limit", "1")
    assert str(second.id) in limited and str(first.id) not in limited


def test_inspect_markdown_by_id_renders_it() -> None:
    artifact = publish(ArtifactType.MARKDOWN, "# Weekly report\n\n- **all** good")
    output = invoke("artifact", "inspect", str(artifact.id))
    assert "Weekly report" in output
    assert "all good" in output
    assert "**" not in output and "# Weekly" not in output


def test_inspect_a_key_shows_its_latest_version() -> None:
    publish(ArtifactType.PROGRESS, 10, key="load")
    publish(ArtifactType.PROGRESS, 75, key="load")
    output = invoke("artifact", "inspect", "load")
    assert "75%" in output and "10%" not in output


def test_inspect_tables_in_both_shapes() -> None:
    rows = publish(ArtifactType.TABLE, [{"city": "Oslo", "n": 3}, {"city": "Rome", "n": None}])
    output = invoke("artifact", "inspect", str(rows.id))
    for text in ("city", "Oslo", "Rome", "null"):
        assert text in output
    columns = publish(ArtifactType.TABLE, {"columns": ["x", "y"], "rows": [["left", 2]]})
    output = invoke("artifact", "inspect", str(columns.id))
    for text in ("x", "y", "left", "2"):
        assert text in output


def test_inspect_a_link() -> None:
    link = publish(ArtifactType.LINK, {"url": "https://example.com/r", "text": "Report"})
    output = invoke("artifact", "inspect", str(link.id))
    assert "Report" in output and "https://example.com/r" in output


def test_inspect_missing_fails_with_one_line() -> None:
    invoke("artifact", "inspect", "no-such-key", code=1)
    invoke("artifact", "inspect", str(uuid.uuid4()), code=1)
    invoke("artifact", "ls", "--flow-run", "not-a-uuid", code=1)
