"""``conveyor concurrency-limit ...``: create, list, inspect, delete and reset limits.

A limit named after a tag caps how many task runs with that tag run at once; any other
name is a global limit for ``with concurrency(name)`` or ``rate_limit(name)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.runs import _when, _with_client

if TYPE_CHECKING:
    from conveyor.schemas.api import ConcurrencyLimitRead

concurrency_limit_app = typer.Typer(
    help="Create, list, inspect, delete and reset concurrency limits.", no_args_is_help=True
)

NameArg = Annotated[str, typer.Argument(help="The limit's name (a tag, for task limits).")]


def _print(rows: list[ConcurrencyLimitRead], title: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    for column in ("Name", "Limit", "Active slots", "Updated"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(escape(row.name), str(row.limit), str(row.active_slots), _when(row.updated))
    Console().print(table)


@concurrency_limit_app.command("create")
def limit_create(
    name: NameArg,
    limit: Annotated[int, typer.Argument(min=0, help="How many slots may be held at once.")],
) -> None:
    """Create a limit, or change the limit of an existing one."""
    _with_client(lambda client: client.set_concurrency_limit(name, limit))
    typer.echo(f"Set concurrency limit {name!r} to {limit}.")


@concurrency_limit_app.command("ls")
def limit_ls(
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many limits to show.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="How many to skip.")] = 0,
) -> None:
    """Limits, sorted by name, with the slots held now."""
    _print(
        _with_client(lambda client: client.list_concurrency_limits(limit, offset)),
        "Concurrency limits",
    )


@concurrency_limit_app.command("inspect")
def limit_inspect(name: NameArg) -> None:
    """One limit and the slots held now."""
    _print([_with_client(lambda client: client.read_concurrency_limit(name))], "Concurrency limit")


@concurrency_limit_app.command("delete")
def limit_delete(name: NameArg) -> None:
    """Remove a limit (and the leases holding its slots)."""
    _with_client(lambda client: client.delete_concurrency_limit(name))
    typer.echo(f"Deleted concurrency limit {name!r}.")


@concurrency_limit_app.command("reset")
def limit_reset(name: NameArg) -> None:
    """Free every slot of a limit (drop all its leases)."""
    _with_client(lambda client: client.reset_concurrency_limit(name))
    typer.echo(f"Reset concurrency limit {name!r}: all slots are free.")
