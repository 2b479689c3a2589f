"""``conveyor flow-run ...`` and ``conveyor task-run ...``: read and manage recorded runs.

Talks to ``CONVEYOR_API_URL`` when it is set, otherwise to the local database (embedded).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from conveyor.client.api import ConveyorClient
    from conveyor.schemas.states import StateType

T = TypeVar("T")

flow_run_app = typer.Typer(help="List, inspect and manage flow runs.", no_args_is_help=True)
task_run_app = typer.Typer(help="List task runs.", no_args_is_help=True)

STATE_COLOURS = {
    "COMPLETED": "green",
    "FAILED": "red",
    "CRASHED": "red",
    "CANCELLED": "grey50",
    "CANCELLING": "grey50",
    "RUNNING": "blue",
    "PENDING": "grey70",
    "SCHEDULED": "yellow",
    "PAUSED": "yellow",
}


def _with_client(action: Callable[[ConveyorClient], Awaitable[T]]) -> T:
    """Run ``action`` with a connected client; API errors become one line and exit 1."""
    from conveyor.cli.main import fail
    from conveyor.client.embedded import run_with_client
    from conveyor.exceptions import ConveyorError

    try:
        return run_with_client(action)
    except ConveyorError as exc:
        fail(str(exc))


def _state(state_type: str | None, name: str | None) -> str:
    if state_type is None:
        return "-"
    colour = STATE_COLOURS.get(state_type, "white")
    return f"[{colour}]{name or state_type}[/{colour}]"


def _when(value: Any) -> str:
    return value.strftime("%m-%d %H:%M:%S") if value is not None else "-"


def _duration(start: Any, end: Any) -> str:
    if start is None or end is None:
        return "-"
    return f"{(end - start).total_seconds():.2f}s"


def _parse_id(value: str, what: str) -> uuid.UUID:
    from conveyor.cli.main import fail

    try:
        return uuid.UUID(value)
    except ValueError:
        fail(f"{value!r} is not a {what} id; ids look like 1b4e28ba-2fa1-11d2-883f-0016d3cca427.")


def _parse_states(values: list[str] | None) -> list[StateType] | None:
    from conveyor.cli.main import fail
    from conveyor.schemas.states import StateType

    try:
        return [StateType(v.upper()) for v in values] if values else None
    except ValueError:
        fail(f"Unknown state in {values}; use one of {', '.join(t.value for t in StateType)}.")


@flow_run_app.command("ls")
def flow_run_ls(
    flow: Annotated[
        list[str] | None, typer.Option("--flow", "-f", help="Only runs of these flows.")
    ] = None,
    state: Annotated[
        list[str] | None, typer.Option("--state", "-s", help="Only runs in these state types.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many runs to show.")] = 20,
) -> None:
    """The most recent flow runs, newest first."""
    from rich.console import Console
    from rich.table import Table

    from conveyor.schemas.api import FlowRunFilter

    states = _parse_states(state)
    flt = FlowRunFilter(flow_name=flow or None, state_type=states, limit=limit)
    runs = _with_client(lambda client: client.filter_flow_runs(flt))
    table = Table(title="Flow runs")
    table.add_column("ID", no_wrap=True, min_width=36)
    for column in ("Flow", "Name", "State", "Started", "Duration"):
        table.add_column(column, overflow="fold")
    for run in runs:
        table.add_row(
            str(run.id),
            run.flow_name or "-",
            run.name,
            _state(run.state_type, run.state_name),
            _when(run.start_time),
            _duration(run.start_time, run.end_time),
        )
    Console().print(table)


@flow_run_app.command("inspect")
def flow_run_inspect(flow_run_id: str = typer.Argument(..., help="The flow run's id.")) -> None:
    """A flow run's details and its state history."""
    from rich.console import Console
    from rich.table import Table

    run_id = _parse_id(flow_run_id, "flow run")

    async def fetch(client: ConveyorClient) -> tuple[Any, Any]:
        return await client.read_flow_run(run_id), await client.read_flow_run_states(run_id)

    run, states = _with_client(fetch)
    console = Console()
    console.print(f"[bold]{run.name}[/bold]  flow [bold]{run.flow_name}[/bold]  id {run.id}")
    console.print(f"State: {_state(run.state_type, run.state_name)}   runs: {run.run_count}")
    console.print(f"Parameters: {run.parameters}")
    if run.tags:
        console.print(f"Tags: {', '.join(run.tags)}")
    if run.parent_flow_run_id:
        console.print(f"Parent flow run: {run.parent_flow_run_id}")
    table = Table(title="State history")
    for column in ("Time", "State", "Message"):
        table.add_column(column)
    for item in states:
        table.add_row(_when(item.timestamp), _state(item.type.value, item.name), item.message or "")
    console.print(table)


@flow_run_app.command("logs")
def flow_run_logs(
    flow_run_id: str = typer.Argument(..., help="The flow run's id."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
) -> None:
    """A flow run's logs, oldest first; --follow tails them until the run is finished."""
    from rich.console import Console
    from rich.markup import escape

    from conveyor.schemas.api import LogFilter

    run_id = _parse_id(flow_run_id, "flow run")
    console = Console(highlight=False)
    levels = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}

    import asyncio

    async def tail(client: ConveyorClient) -> None:
        await client.read_flow_run(run_id)  # a clear 404 for an unknown run
        after: int | None = None
        while True:
            page = await client.filter_logs(LogFilter(flow_run_id=run_id, after_id=after))
            for line in page:
                level = levels.get(line.level, str(line.level))
                console.print(f"{_when(line.timestamp)} | {level:<7} | {escape(line.message)}")
                after = line.id
            if len(page) == 200:
                continue
            if not follow:
                return
            run = await client.read_flow_run(run_id)
            if run.end_time is not None and not page:
                return
            await asyncio.sleep(1.0)

    _with_client(tail)


@flow_run_app.command("cancel")
def flow_run_cancel(flow_run_id: str = typer.Argument(..., help="The flow run's id.")) -> None:
    """Cancel a flow run: at once if it has not started, else at its next task call."""
    from conveyor.cli.main import fail
    from conveyor.schemas.api import OrchestrationStatus

    run_id = _parse_id(flow_run_id, "flow run")
    result = _with_client(lambda client: client.cancel_flow_run(run_id))
    if result.status is OrchestrationStatus.ABORT or result.state is None:
        fail(f"Flow run {run_id} was not cancelled: {result.reason}")
    if result.state.is_cancelled():
        typer.echo(f"Cancelled flow run {run_id}.")
    else:
        typer.echo(
            f"Cancelling flow run {run_id}: it stops at its next task call and ends Cancelled."
        )


@flow_run_app.command("retry")
def flow_run_retry(flow_run_id: str = typer.Argument(..., help="The flow run's id.")) -> None:
    """Run a finished deployment run again: scheduled now, for a worker of its pool."""
    run_id = _parse_id(flow_run_id, "flow run")
    result = _with_client(lambda client: client.retry_flow_run(run_id))
    name = result.state.name if result.state is not None else "Scheduled"
    typer.echo(
        f"Retrying flow run {run_id}: it is {name}, due now; a worker of its pool "
        "(or the process serving its deployment) starts it."
    )


@flow_run_app.command("resume")
def flow_run_resume(
    flow_run_id: str = typer.Argument(..., help="The flow run's id."),
    run_input: Annotated[
        str | None,
        typer.Option("--input", help="The input the pause waits for, as a JSON object."),
    ] = None,
) -> None:
    """Resume a paused run (Running again), or a suspended one (Scheduled to run again)."""
    import json

    from conveyor.cli.main import fail

    run_id = _parse_id(flow_run_id, "flow run")
    value: dict[str, Any] | None = None
    if run_input is not None:
        try:
            value = json.loads(run_input)
        except ValueError as exc:
            fail(f"--input is not JSON: {exc}")
        if not isinstance(value, dict):
            fail(f"--input must be a JSON object, not {type(value).__name__}: {run_input}")
    result = _with_client(lambda client: client.resume_flow_run(run_id, value))
    if result.state is not None and result.state.is_scheduled():
        typer.echo(f"Resumed flow run {run_id}: scheduled to run again.")
    else:
        typer.echo(f"Resumed flow run {run_id}.")


@flow_run_app.command("delete")
def flow_run_delete(flow_run_id: str = typer.Argument(..., help="The flow run's id.")) -> None:
    """Delete a flow run with its task runs, states and logs."""
    run_id = _parse_id(flow_run_id, "flow run")
    _with_client(lambda client: client.delete_flow_run(run_id))
    typer.echo(f"Deleted flow run {run_id}.")


@task_run_app.command("ls")
def task_run_ls(
    flow_run: Annotated[
        str | None, typer.Option("--flow-run", help="Only task runs of this flow run.")
    ] = None,
    state: Annotated[
        list[str] | None, typer.Option("--state", "-s", help="Only these state types.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many task runs to show.")] = 20,
) -> None:
    """The most recent task runs, newest first."""
    from rich.console import Console
    from rich.table import Table

    from conveyor.schemas.api import TaskRunFilter

    states = _parse_states(state)
    flow_runs = [_parse_id(flow_run, "flow run")] if flow_run else None
    flt = TaskRunFilter(flow_run_id=flow_runs, state_type=states, limit=limit)
    runs = _with_client(lambda client: client.filter_task_runs(flt))
    table = Table(title="Task runs")
    table.add_column("ID", no_wrap=True, min_width=36)
    for column in ("Name", "State", "Flow run", "Started", "Duration"):
        table.add_column(column, overflow="fold")
    for run in runs:
        table.add_row(
            str(run.id),
            run.name,
            _state(run.state_type, run.state_name),
            str(run.flow_run_id or "-"),
            _when(run.start_time),
            _duration(run.start_time, run.end_time),
        )
    Console().print(table)
