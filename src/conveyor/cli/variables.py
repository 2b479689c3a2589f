"""``conveyor variable ...``: set, read, list and remove variables (named JSON values).

Talks to ``CONVEYOR_API_URL`` when it is set, otherwise to the local database (embedded).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from conveyor.cli.runs import _when, _with_client

variable_app = typer.Typer(help="Set, read, list and remove variables.", no_args_is_help=True)

VALUE_WIDTH = 40


def _parse_value(text: str) -> Any:
    """``text`` as JSON when it parses (``42``, ``true``, ``{"a": 1}``), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _truncated(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


@variable_app.command("set")
def variable_set(
    name: Annotated[str, typer.Argument(help="The variable's name.")],
    value: Annotated[str, typer.Argument(help="The value: JSON if it parses, else a string.")],
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="A tag (repeat for more).")
    ] = None,
) -> None:
    """Create a variable, or replace its value and tags."""
    parsed = _parse_value(value)
    _with_client(lambda client: client.set_variable(name, parsed, tag or []))
    typer.echo(f"Set variable {name!r}.")


@variable_app.command("get")
def variable_get(name: Annotated[str, typer.Argument(help="The variable's name.")]) -> None:
    """Print a variable's value as JSON."""
    variable = _with_client(lambda client: client.read_variable(name))
    typer.echo(json.dumps(variable.value, ensure_ascii=False))


@variable_app.command("ls")
def variable_ls(
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many variables to show.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="How many to skip.")] = 0,
) -> None:
    """Variables, sorted by name."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    rows = _with_client(lambda client: client.list_variables(limit, offset))
    table = Table(title="Variables")
    for column in ("Name", "Value", "Tags", "Updated"):
        table.add_column(column, overflow="fold")
    for variable in rows:
        table.add_row(
            escape(variable.name),
            escape(_truncated(variable.value)),
            escape(", ".join(variable.tags)),
            _when(variable.updated),
        )
    Console().print(table)


@variable_app.command("unset")
def variable_unset(name: Annotated[str, typer.Argument(help="The variable's name.")]) -> None:
    """Remove a variable."""
    _with_client(lambda client: client.delete_variable(name))
    typer.echo(f"Unset variable {name!r}.")
