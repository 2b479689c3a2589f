"""The read-only catalogue pages: flows, concurrency limits, variables and artifacts.

Each is a page of at most ``PAGE_SIZE`` rows in name (or time) order, read through the
models the API uses, with one more row read to know whether a next page exists.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from conveyor.schemas.api import ArtifactFilter
from conveyor.server.database import orm
from conveyor.server.models import artifacts, concurrency_limits, flows, variables
from conveyor.server.ui import templating
from conveyor.server.ui.artifacts import view as artifact_view
from conveyor.server.ui.common import database

router = APIRouter()

PAGE_SIZE = 50
MAX_PAGE = 10_000


@dataclasses.dataclass(frozen=True)
class Page:
    rows: list[Any]
    number: int
    has_next: bool
    extra: dict[str, Any]


def _page_number(request: Request) -> int:
    text = request.query_params.get("page", "1")
    return min(max(int(text), 1), MAX_PAGE) if text.isdigit() and len(text) < 6 else 1


def _paged(
    list_rows: Callable[[Session, int, int], Sequence[Any]], number: int
) -> Callable[[Session], tuple[list[Any], bool]]:
    def read(session: Session) -> tuple[list[Any], bool]:
        rows = list(list_rows(session, PAGE_SIZE + 1, (number - 1) * PAGE_SIZE))
        return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE

    return read


def _newest_runs(session: Session, flow_ids: list[uuid.UUID]) -> dict[uuid.UUID, orm.FlowRun]:
    """Each flow's newest run, one ``(flow_id, created)`` index lookup per flow."""
    found = {}
    for flow_id in flow_ids:
        query = (
            select(orm.FlowRun)
            .where(orm.FlowRun.flow_id == flow_id)
            .order_by(orm.FlowRun.created.desc())
            .limit(1)
        )
        run = session.execute(query).scalar_one_or_none()
        if run is not None:
            found[flow_id] = run
    return found


@router.get("/flows")
async def flows_page(request: Request) -> Response:
    number = _page_number(request)

    def read(session: Session) -> Page:
        rows, more = _paged(flows.list_flows, number)(session)
        return Page(rows, number, more, {"newest": _newest_runs(session, [f.id for f in rows])})

    page = await database(request).read(read)
    return templating.page("flows.html", title="Flows", page=page, path="/flows")


@router.get("/concurrency-limits")
async def limits_page(request: Request) -> Response:
    number = _page_number(request)
    now = datetime.datetime.now(datetime.timezone.utc)

    def read(session: Session) -> Page:
        rows, more = _paged(concurrency_limits.list_limits, number)(session)
        held = concurrency_limits.active_slots(session, [r.id for r in rows], now)
        return Page(rows, number, more, {"held": held})

    page = await database(request).read(read)
    return templating.page(
        "concurrency_limits.html", title="Concurrency limits", page=page, path="/concurrency-limits"
    )


@router.get("/variables")
async def variables_page(request: Request) -> Response:
    number = _page_number(request)

    def read(session: Session) -> Page:
        rows, more = _paged(variables.list_variables, number)(session)
        return Page(rows, number, more, {})

    page = await database(request).read(read)
    return templating.page("variables.html", title="Variables", page=page, path="/variables")


def _list_artifacts(session: Session, limit: int, offset: int) -> Sequence[orm.Artifact]:
    return artifacts.filter_artifacts(session, ArtifactFilter(limit=limit, offset=offset))


@router.get("/artifacts")
async def artifacts_page(request: Request) -> Response:
    number = _page_number(request)

    def read(session: Session) -> Page:
        rows, more = _paged(_list_artifacts, number)(session)
        return Page([artifact_view(a) for a in rows], number, more, {})

    page = await database(request).read(read)
    return templating.page("artifacts.html", title="Artifacts", page=page, path="/artifacts")
