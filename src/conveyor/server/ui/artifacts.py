"""Artifacts as a person sees them: markdown rendered safely, tables as tables.

Markdown goes through markdown-it-py (CommonMark) with raw HTML turned off: any HTML in
an artifact is shown as text, never run, and links with ``javascript:`` and similar
schemes are not made links. Artifacts come from users' code, so they are untrusted.
"""

from __future__ import annotations

import dataclasses
import functools
import urllib.parse
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

from conveyor.server.database import orm

MAX_TABLE_ROWS = 200
_SAFE_SCHEMES = ("http", "https", "mailto", "")


@functools.cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown(text: str) -> Markup:
    return Markup(_markdown().render(text))  # html=False: the renderer escapes everything


@dataclasses.dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool


def table(data: Any) -> Table:
    """Either table shape (a list of row objects, or columns and rows), at most
    ``MAX_TABLE_ROWS`` rows."""
    if isinstance(data, dict):
        columns = [str(c) for c in data.get("columns", [])]
        rows = [list(r) for r in data.get("rows", [])]
    else:
        columns = list(dict.fromkeys(str(k) for row in data for k in row))
        rows = [[row.get(c, "") for c in columns] for row in data]
    return Table(columns, rows[:MAX_TABLE_ROWS], len(rows) > MAX_TABLE_ROWS)


def safe_url(url: str) -> str | None:
    """``url`` if it is a web or mail link (or relative); None for anything else."""
    scheme = urllib.parse.urlsplit(url.strip()).scheme.lower()
    return url if scheme in _SAFE_SCHEMES else None


@dataclasses.dataclass(frozen=True)
class ArtifactView:
    artifact: orm.Artifact
    markdown: Markup | None = None
    table: Table | None = None
    link: tuple[str | None, str] | None = None  # (safe url, text)
    progress: float | None = None


def view(artifact: orm.Artifact) -> ArtifactView:
    data = artifact.data
    if artifact.type == "markdown" and isinstance(data, str):
        return ArtifactView(artifact, markdown=render_markdown(data))
    if artifact.type == "table":
        return ArtifactView(artifact, table=table(data))
    if artifact.type == "link" and isinstance(data, dict):
        url = str(data.get("url", ""))
        return ArtifactView(artifact, link=(safe_url(url), str(data.get("text") or url)))
    if artifact.type == "progress" and isinstance(data, (int, float)):
        return ArtifactView(artifact, progress=float(data))
    return ArtifactView(artifact)
