"""``conveyor deploy [NAME ...] [--file conveyor.yaml] [--all]``: make or replace the
deployments a ``conveyor.yaml`` declares, all checked before any is sent."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from conveyor.client.api import ConveyorClient
    from conveyor.deployments.config import DeploymentSpec
    from conveyor.schemas.deployments import DeploymentRead


def _chosen(
    specs: list[DeploymentSpec], names: list[str], everything: bool
) -> list[DeploymentSpec]:
    declared = [spec.name for spec in specs]
    if everything or (not names and len(specs) == 1):
        return specs
    if not names:
        raise ValueError(
            f"The file declares {len(specs)} deployments ({', '.join(declared)}); name the ones "
            f"to deploy, or pass --all."
        )
    unknown = [name for name in names if name not in declared]
    if unknown:
        raise ValueError(
            f"No deployment named {unknown[0]!r} in the file; it declares {', '.join(declared)}."
        )
    return [spec for spec in specs if spec.name in names]


def deploy(
    names: Annotated[
        list[str] | None, typer.Argument(help="Deployments of the file to deploy (by name).")
    ] = None,
    file: Annotated[
        Path, typer.Option("--file", "-f", help="The file declaring the deployments.")
    ] = Path("conveyor.yaml"),
    everything: Annotated[
        bool, typer.Option("--all", help="Deploy every deployment of the file.")
    ] = False,
) -> None:
    """Create or replace the deployments a conveyor.yaml declares."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from conveyor.cli.main import fail
    from conveyor.cli.runs import _with_client
    from conveyor.deployments.config import load_config
    from conveyor.deployments.deploy import apply
    from conveyor.exceptions import ConveyorError

    try:
        specs = _chosen(load_config(file), names or [], everything)
    except (ConveyorError, ValueError) as exc:
        fail(str(exc))
    base = file.absolute().parent

    async def send(client: ConveyorClient) -> list[DeploymentRead]:
        return await apply(client, specs, base)

    deployed = _with_client(send)
    table = Table(title="Deployed")
    for column in ("Deployment", "Work pool", "Schedules", "Run it with"):
        table.add_column(column, overflow="fold")
    for row in deployed:
        full = f"{row.flow_name}/{row.name}"
        table.add_row(
            escape(full),
            escape(row.work_pool_name or "- (served)"),
            str(len(row.schedules)) if row.schedules else "-",
            escape(f"conveyor deployment run '{full}'"),
        )
    console = Console(highlight=False)
    console.print(table)
    if any(row.work_pool_name for row in deployed):
        pools = sorted({row.work_pool_name for row in deployed if row.work_pool_name})
        console.print(f"Start a worker to run them: conveyor worker start --pool {pools[0]}")
