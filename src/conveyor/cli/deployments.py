"""``conveyor deployment ...``: list, inspect, pause, resume and delete deployments.

A deployment is named ``flow-name/deployment-name`` here, as in Prefect. Talks to
``CONVEYOR_API_URL`` when it is set, otherwise to the local database (embedded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.runs import _when, _with_client
from conveyor.cli.work_pools import print_detail

if TYPE_CHECKING:
    from conveyor.client.api import ConveyorClient
    from conveyor.schemas.deployments import DeploymentRead

deployment_app = typer.Typer(
    help="List, inspect, pause, resume and delete deployments.", no_args_is_help=True
)

NameArg = Annotated[str, typer.Argument(help="The deployment, as flow-name/deployment-name.")]


def _split(name: str) -> tuple[str, str]:
    from conveyor.cli.main import fail

    # Deployment names cannot contain "/", flow names can: split at the last one.
    flow, slash, deployment = name.rpartition("/")
    if not slash or not flow or not deployment:
        fail(f"{name!r} is not a deployment name; write flow-name/deployment-name.")
    return flow, deployment


async def _read(client: ConveyorClient, flow_and_name: tuple[str, str]) -> DeploymentRead:
    return await client.read_deployment_by_name(*flow_and_name)


@deployment_app.command("ls")
def deployment_ls(
    flow: Annotated[
        list[str] | None, typer.Option("--flow", "-f", help="Only deployments of these flows.")
    ] = None,
    pool: Annotated[
        list[str] | None, typer.Option("--pool", "-p", help="Only those in these work pools.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many to show.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="How many to skip.")] = 0,
) -> None:
    """Deployments, sorted by name."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from conveyor.schemas.deployments import DeploymentFilter

    flt = DeploymentFilter(flow_name=flow, work_pool_name=pool, limit=limit, offset=offset)
    rows = _with_client(lambda client: client.filter_deployments(flt))
    table = Table(title="Deployments")
    for column in ("Name", "Work pool", "Schedules", "Paused", "Updated"):
        table.add_column(column, overflow="fold")
    for row in rows:
        active = sum(s.active for s in row.schedules)
        table.add_row(
            escape(f"{row.flow_name}/{row.name}"),
            escape(row.work_pool_name or "- (served)"),
            f"{active} active of {len(row.schedules)}" if row.schedules else "-",
            "yes" if row.paused else "no",
            _when(row.updated),
        )
    Console().print(table)


@deployment_app.command("inspect")
def deployment_inspect(name: NameArg) -> None:
    """A deployment in full: source, parameters, pool, job variables and schedules."""
    names = _split(name)
    print_detail(_with_client(lambda client: _read(client, names)))


def _set_paused(name: str, paused: bool) -> None:
    from conveyor.schemas.deployments import DeploymentUpdate

    names = _split(name)

    async def update(client: ConveyorClient) -> None:
        deployment = await _read(client, names)
        await client.update_deployment(deployment.id, DeploymentUpdate(paused=paused))

    _with_client(update)


@deployment_app.command("pause")
def deployment_pause(name: NameArg) -> None:
    """Pause a deployment: its schedules make no runs, and future scheduled ones are removed."""
    _set_paused(name, True)
    typer.echo(f"Paused deployment {name!r}.")


@deployment_app.command("resume")
def deployment_resume(name: NameArg) -> None:
    """Resume a paused deployment."""
    _set_paused(name, False)
    typer.echo(f"Resumed deployment {name!r}.")


@deployment_app.command("delete")
def deployment_delete(name: NameArg) -> None:
    """Delete a deployment and its schedules; its past runs are kept."""

    names = _split(name)

    async def delete(client: ConveyorClient) -> None:
        deployment = await _read(client, names)
        await client.delete_deployment(deployment.id)

    _with_client(delete)
    typer.echo(f"Deleted deployment {name!r}.")


@deployment_app.command("run")
def deployment_run(
    name: NameArg,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param", "-p", help="A parameter, key=value (the value read as JSON if it is)."
        ),
    ] = None,
    param_json: Annotated[
        str | None, typer.Option("--param-json", help="Parameters as a JSON object.")
    ] = None,
    job_variable: Annotated[
        list[str] | None,
        typer.Option("--job-variable", help="A job variable, key=value (JSON if it is)."),
    ] = None,
    start_in: Annotated[
        str | None, typer.Option("--start-in", help="Due after this long: 90s, 10m, 1h30m, 2d.")
    ] = None,
    start_at: Annotated[
        str | None, typer.Option("--start-at", help="Due at this ISO time (local if no offset).")
    ] = None,
    watch: Annotated[
        bool,
        typer.Option("--watch", help="Follow the run until it is final; exit 1 unless Completed."),
    ] = False,
) -> None:
    """Create a run of a deployment; a worker of its pool starts it when it is due."""
    import datetime

    from conveyor.cli import deployment_run as inputs
    from conveyor.cli.main import fail
    from conveyor.deployments.run import start_deployment_run

    names = _split(name)
    try:
        parameters = inputs.json_object(param_json, "--param-json") if param_json else {}
        parameters.update(inputs.key_values(param or [], "--param"))
        job_variables = inputs.key_values(job_variable or [], "--job-variable")
        if start_in is not None and start_at is not None:
            raise ValueError("--start-in and --start-at: give one of them, not both.")
        when = inputs.instant(start_at) if start_at else None
        if start_in is not None:
            when = datetime.datetime.now(datetime.timezone.utc) + inputs.duration(start_in)
    except ValueError as exc:
        fail(str(exc))

    async def run(client: ConveyorClient) -> bool:
        created = await start_deployment_run(
            client, "/".join(names), parameters, job_variables=job_variables, scheduled_time=when
        )
        due = created.expected_start_time
        typer.echo(
            f"Created flow run {created.name!r} ({created.id}) of {name!r}"
            + (f", due {due.isoformat()}." if due is not None else ".")
        )
        if not watch:
            return True
        final = await inputs.follow(client, created, poll_interval=1.0)
        return final.state_type is not None and final.state_type.value == "COMPLETED"

    if not _with_client(run):
        raise typer.Exit(1)


@deployment_app.command("backfill")
def deployment_backfill(
    name: NameArg,
    start: Annotated[str, typer.Option("--start", help="From this ISO time (local if no offset).")],
    end: Annotated[str, typer.Option("--end", help="Up to this ISO time, excluded.")],
    max_runs: Annotated[
        int, typer.Option("--max-runs", help="Refuse a window with more scheduled times (≤ 1000).")
    ] = 100,
) -> None:
    """Make a run for each scheduled time in [start, end) that has none yet."""
    from pydantic import ValidationError

    from conveyor.cli import deployment_run as inputs
    from conveyor.cli.main import fail
    from conveyor.schemas.deployments import DeploymentBackfill

    names = _split(name)
    try:
        window = (inputs.instant(start, "--start"), inputs.instant(end, "--end"))
        body = DeploymentBackfill(start=window[0], end=window[1], max_runs=max_runs)
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            error = exc.errors()[0]
            message = error["msg"].removeprefix("Value error, ")
            fail(f"--{'-'.join(str(p) for p in error['loc']).replace('_', '-')}: {message}.")
        fail(str(exc))

    async def backfill(client: ConveyorClient) -> tuple[int, int]:
        deployment = await _read(client, names)
        result = await client.backfill_deployment(deployment.id, body)
        return result.created, result.skipped

    created, skipped = _with_client(backfill)
    typer.echo(
        f"Backfilled {name!r}: {created} run(s) created, {skipped} skipped (already had a run)."
    )
