"""``conveyor deployment run`` and ``conveyor.run_deployment``, against the embedded backend
under CONVEYOR_HOME. Nothing launches runs here: a helper thread plays the worker."""

from __future__ import annotations

import asyncio
import datetime
import os
import threading
import uuid
from pathlib import Path
from typing import Any, TypeVar

import pytest
from typer.testing import CliRunner

import conveyor
from conveyor.cli.main import app
from conveyor.client.api import ConveyorClient
from conveyor.client.embedded import run_with_client
from conveyor.schemas.api import FlowRunFilter, FlowRunRead, RecordBatch
from conveyor.schemas.deployments import DeploymentCreate, DeploymentScheduleCreate
from conveyor.schemas.logs import LogRecordCreate
from conveyor.schemas.schedules import CronSchedule
from conveyor.schemas.states import State, StateType

runner = CliRunner()
T = TypeVar("T")
SCHEMA = {
    "type": "object",
    "properties": {"n": {"type": "integer"}, "label": {"type": "string"}, "x": {}},
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("CONVEYOR_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("CONVEYOR_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "300")
    return home


@pytest.fixture
def deployment_id() -> uuid.UUID:
    body = DeploymentCreate(
        flow_name="etl",
        name="daily",
        entrypoint="flows.py:etl",
        parameters={"n": 1},
        parameter_schema=SCHEMA,
    )
    return run_with_client(lambda client: client.deploy(body)).id


def runs_of(deployment_id: uuid.UUID) -> list[FlowRunRead]:
    flt = FlowRunFilter(deployment_id=[deployment_id])
    return run_with_client(lambda client: client.filter_flow_runs(flt))


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_run_with_parameters_prints_the_run(deployment_id: uuid.UUID) -> None:
    output = invoke(
        "deployment", "run", "etl/daily", "-p", "n=5", "-p", "label=07", "-p", 'x={"a": [1]}'
    )
    (run,) = runs_of(deployment_id)
    assert f"Created flow run {run.name!r} ({run.id}) of 'etl/daily'" in output
    # JSON when it parses (5, an object), text otherwise ("07" is not JSON).
    assert run.parameters == {"n": 5, "label": "07", "x": {"a": [1]}}
    assert run.state_type is StateType.SCHEDULED


def test_param_json_and_start_in(deployment_id: uuid.UUID) -> None:
    before = datetime.datetime.now(datetime.timezone.utc)
    invoke("deployment", "run", "etl/daily", "--param-json", '{"n": 2, "label": "a"}',
           "-p", "label=b", "--start-in", "1h30m")  # fmt: skip
    (run,) = runs_of(deployment_id)
    assert run.parameters == {"n": 2, "label": "b"}
    assert run.expected_start_time is not None
    delay = run.expected_start_time - before
    assert datetime.timedelta(minutes=89) < delay < datetime.timedelta(minutes=91)


def test_start_at(deployment_id: uuid.UUID) -> None:
    invoke("deployment", "run", "etl/daily", "--start-at", "2030-01-02T03:04:05+00:00")
    (run,) = runs_of(deployment_id)
    assert run.expected_start_time == datetime.datetime(
        2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "n=abc"], "parameters.n: 'abc' is not of type 'integer'"),
        (["-p", "novalue"], "--param 'novalue': write key=value."),
        (["--param-json", "[1]"], "--param-json: must be a JSON object"),
        (["--start-in", "soon"], "--start-in 'soon'"),
        (["--start-in", "1m", "--start-at", "2030-01-01"], "give one of them"),
        (["--job-variable", "image=x"], "job_variables"),
    ],
)
def test_bad_input_is_one_line_naming_the_field_and_creates_nothing(
    deployment_id: uuid.UUID, args: list[str], message: str
) -> None:
    output = invoke("deployment", "run", "etl/daily", *args, code=1).strip()
    assert len(output.splitlines()) == 1, output
    assert output.startswith("Error: ") and message in output, output
    assert runs_of(deployment_id) == []


def test_an_unknown_deployment_is_one_line() -> None:
    output = invoke("deployment", "run", "etl/nope", code=1)
    assert "No deployment named etl/nope" in output and len(output.strip().splitlines()) == 1


def play_worker(deployment_id: uuid.UUID, final: StateType) -> threading.Thread:
    """A thread that waits for the deployment's run, logs a line and finishes it."""

    async def work(client: ConveyorClient) -> None:
        for _ in range(200):
            found = await client.filter_flow_runs(FlowRunFilter(deployment_id=[deployment_id]))
            if found:
                break
            await asyncio.sleep(0.05)
        run_id = found[0].id
        for state in (StateType.PENDING, StateType.RUNNING):
            await client.set_flow_run_state(run_id, State(type=state))
        now = datetime.datetime.now(datetime.timezone.utc)
        line = LogRecordCreate(
            name="etl", level=20, message="hello from the run", timestamp=now, flow_run_id=run_id
        )
        await client.record(RecordBatch(logs=[line]))
        await asyncio.sleep(0.3)
        await client.set_flow_run_state(run_id, State(type=final))

    thread = threading.Thread(target=run_with_client, args=(work,))
    thread.start()
    return thread


@pytest.mark.parametrize(("final", "code"), [(StateType.COMPLETED, 0), (StateType.FAILED, 1)])
def test_watch_follows_the_run_to_its_end(
    deployment_id: uuid.UUID, final: StateType, code: int
) -> None:
    worker = play_worker(deployment_id, final)
    output = invoke("deployment", "run", "etl/daily", "--watch", code=code)
    worker.join(timeout=30)
    assert "hello from the run" in output
    assert final.value.title() in output.splitlines()[-1]


def test_run_deployment_waits_until_final(deployment_id: uuid.UUID) -> None:
    worker = play_worker(deployment_id, StateType.COMPLETED)
    run = conveyor.run_deployment("etl/daily", {"n": 3}, poll_interval=0.1)
    worker.join(timeout=30)
    assert run.state_type is StateType.COMPLETED
    assert run.parameters == {"n": 3} and run.flow_name == "etl"


def test_run_deployment_with_timeout_0_returns_at_once(deployment_id: uuid.UUID) -> None:
    when = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    run = conveyor.run_deployment("etl/daily", timeout=0, scheduled_time=when)
    assert run.state_type is StateType.SCHEDULED and run.expected_start_time == when
    assert run.parent_flow_run_id is None


def test_run_deployment_in_a_flow_and_a_task_makes_child_runs(deployment_id: uuid.UUID) -> None:
    @conveyor.task
    def start_in_task() -> FlowRunRead:
        return conveyor.run_deployment("etl/daily", timeout=0)

    @conveyor.flow
    def parent() -> tuple[Any, FlowRunRead, FlowRunRead]:
        from_flow = conveyor.run_deployment("etl/daily", timeout=0)
        from_task = start_in_task()
        return conveyor.get_run_context(), from_flow, from_task

    context, from_flow, from_task = parent()
    flow_run_id = context.flow_run.id
    assert from_flow.parent_flow_run_id == flow_run_id and from_flow.parent_task_run_id is None
    assert from_task.parent_flow_run_id == flow_run_id
    assert from_task.parent_task_run_id is not None


def test_backfill() -> None:
    hourly = DeploymentScheduleCreate(schedule=CronSchedule(cron="0 * * * *"))
    body = DeploymentCreate(
        flow_name="etl", name="hourly", entrypoint="flows.py:etl", schedules=[hourly]
    )
    deployment_id = run_with_client(lambda client: client.deploy(body)).id
    window = ["--start", "2025-01-01T00:00:00+00:00", "--end", "2025-01-01T05:00Z"]
    output = invoke("deployment", "backfill", "etl/hourly", *window)
    assert "Backfilled 'etl/hourly': 5 run(s) created, 0 skipped" in output
    output = invoke("deployment", "backfill", "etl/hourly", *window)
    assert "0 run(s) created, 5 skipped (already had a run)" in output
    assert len(runs_of(deployment_id)) == 5

    too_many = invoke("deployment", "backfill", "etl/hourly", *window, "--max-runs", "4", code=1)
    assert "max_runs: [start, end) holds more than 4 scheduled times" in too_many
    backwards = ["--start", window[3], "--end", window[1]]
    error = invoke("deployment", "backfill", "etl/hourly", *backwards, code=1).strip()
    assert error == "Error: --end: must be after start."
    error = invoke("deployment", "backfill", "etl/hourly", *window, "--max-runs", "5000", code=1)
    assert error.strip().startswith("Error: --max-runs: ")
