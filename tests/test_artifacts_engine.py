"""Artifacts published from inside a flow and its tasks, recorded by the embedded backend."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    flow,
    task,
)
from conveyor.client.embedded import connect
from conveyor.engine import runtime
from conveyor.schemas.api import ArtifactFilter, ArtifactRead, ArtifactType
from conveyor.settings import Settings


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith("CONVEYOR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path))
    try:
        with runtime.use_settings(Settings(home=tmp_path)):
            yield tmp_path
            runtime.get_recorder().flush()
    finally:
        runtime.reset()


def read_back(home: Path, flt: ArtifactFilter) -> list[ArtifactRead]:
    async def run() -> list[ArtifactRead]:
        client = await connect(Settings(home=home))
        try:
            return await client.filter_artifacts(flt)
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_artifacts_made_in_a_task_carry_the_flow_run_and_task_run(home: Path) -> None:
    made: dict[str, uuid.UUID] = {}

    @task
    def report() -> None:
        made["markdown"] = create_markdown_artifact(
            "# Report\n\nAll good.", key="daily-report", description="the daily report"
        )
        made["table"] = create_table_artifact([{"city": "Oslo", "n": 3}, {"city": "Rome", "n": 4}])

    @flow
    def pipeline() -> uuid.UUID:
        report()
        made["link"] = create_link_artifact("https://example.com", link_text="Example")
        return create_progress_artifact(100, key="pipeline-progress")

    state = pipeline(return_state=True)
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    progress_id = state.result()

    artifacts = read_back(home, ArtifactFilter(flow_run_id=flow_run_id))
    by_id = {a.id: a for a in artifacts}
    assert set(by_id) == {made["markdown"], made["table"], made["link"], progress_id}

    markdown, table = by_id[made["markdown"]], by_id[made["table"]]
    assert markdown.type is ArtifactType.MARKDOWN
    assert markdown.data == "# Report\n\nAll good."
    assert markdown.key == "daily-report"
    assert markdown.description == "the daily report"
    assert table.type is ArtifactType.TABLE
    assert table.data == [{"city": "Oslo", "n": 3}, {"city": "Rome", "n": 4}]
    for artifact in (markdown, table):
        assert artifact.flow_run_id == flow_run_id
        assert artifact.task_run_id is not None
    assert markdown.task_run_id == table.task_run_id

    link, progress = by_id[made["link"]], by_id[progress_id]
    assert link.data == {"url": "https://example.com", "text": "Example"}
    assert progress.data == 100
    for artifact in (link, progress):
        assert artifact.flow_run_id == flow_run_id
        assert artifact.task_run_id is None


def test_bad_data_is_refused_before_anything_is_sent(home: Path) -> None:
    with pytest.raises(ValueError, match="progress"):
        create_progress_artifact(150)
    with pytest.raises(ValueError, match="key"):
        create_markdown_artifact("x", key="Not A Key")
    assert read_back(home, ArtifactFilter()) == []


def test_without_a_backend_nothing_is_recorded(tmp_path: Path) -> None:
    with runtime.use_settings(Settings(home=tmp_path, backend="none")):
        artifact_id = create_markdown_artifact("# nowhere")
    assert isinstance(artifact_id, uuid.UUID)
    assert not (tmp_path / "conveyor.db").exists()
