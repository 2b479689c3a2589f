"""``conveyor artifact ...``: list and show artifacts (markdown, tables, links, progress).

Talks to ``CONVEYOR_API_URL`` when it is set, otherwise to the local database (embedded).
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli.runs import _parse_id, _when, _with_client

if TYPE_CHECKING:
    from conveyor.schemas.api import ArtifactRead

artifact_app = typer.Typer(help="List and show artifacts.", no_args_is_help=True)


@artifact_app.command("ls")
def artifact_ls(
    key: Annotated[str | None, typer.Option("--key", help="Only this key's history.")] = None,
    flow_run: Annotated[
        str | None, typer.Option("--flow-run", help="Only artifacts of this flow run (id).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many artifacts to show.")] = 50,
) -> None:
    """Artifacts, newest first."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from conveyor.schemas.api import ArtifactFilter

    flow_run_id = _parse_id(flow_run, "flow run") if flow_run is not None else None
    flt = ArtifactFilter(key=key, flow_run_id=flow_run_id, limit=limit)
    rows = _with_client(lambda client: client.filter_artifacts(flt))
    table = Table(title="Artifacts")
    for column in ("ID", "Key", "Type", "Flow run", "Created"):
        table.add_column(column, overflow="fold")
    for artifact in rows:
        table.add_row(
            str(artifact.id),
            escape(artifact.key or "-"),
            artifact.type.value,
            str(artifact.flow_run_id) if artifact.flow_run_id else "-",
            _when(artifact.created),
        )
    Console().print(table)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _show(artifact: ArtifactRead) -> None:
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.markup import escape
    from rich.table import Table

    from conveyor.schemas.api import ArtifactType

    console = Console()
    title = f"{artifact.type.value} artifact {artifact.id}"
    if artifact.key:
        title += f" (key {artifact.key})"
    console.print(escape(title), highlight=False)
    if artifact.flow_run_id or artifact.task_run_id:
        console.print(
            f"flow run {artifact.flow_run_id or '-'}, task run {artifact.task_run_id or '-'}",
            highlight=False,
        )
    console.print(f"created {artifact.created.isoformat()}", highlight=False)
    if artifact.description:
        console.print(escape(artifact.description), highlight=False)
    console.print()
    data = artifact.data
    if artifact.type is ArtifactType.MARKDOWN:
        console.print(Markdown(data))
    elif artifact.type is ArtifactType.TABLE:
        table = Table()
        if isinstance(data, dict):
            columns: list[str] = list(data["columns"])
            rows: list[list[Any]] = list(data["rows"])
        else:
            columns = list(dict.fromkeys(name for row in data for name in row))
            rows = [[row.get(name) for name in columns] for row in data]
        for column in columns:
            table.add_column(escape(column), overflow="fold")
        for row in rows:
            table.add_row(*(escape(_cell(value)) for value in row))
        console.print(table)
    elif artifact.type is ArtifactType.LINK:
        text = data.get("text")
        url = data["url"]
        console.print(escape(f"{text}: {url}" if text else url), highlight=False)
    else:
        console.print(f"progress {data:g}%", highlight=False)


@artifact_app.command("inspect")
def artifact_inspect(
    id_or_key: Annotated[
        str, typer.Argument(help="An artifact's id, or a key (shows its latest version).")
    ],
) -> None:
    """Show an artifact: markdown rendered, a table as a table, a link or progress as text."""
    if _is_uuid(id_or_key):
        artifact_id = uuid.UUID(id_or_key)
        artifact = _with_client(lambda client: client.read_artifact(artifact_id))
    else:
        artifact = _with_client(lambda client: client.read_latest_artifact(id_or_key))
    _show(artifact)
