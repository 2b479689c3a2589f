"""The dashboard: runs by state over a time range, failed and late runs, what comes next,
and the work pools with their workers' health."""

from __future__ import annotations

import dataclasses
import datetime

from fastapi import APIRouter
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from conveyor.schemas.states import StateType
from conveyor.server.models import dashboard as queries
from conveyor.server.ui import charts, templating
from conveyor.server.ui.common import database

router = APIRouter()

LIST_LIMIT = 10
POOL_LIMIT = 50
COUNT_CAP = 50_000  # runs counted per state in the chart's range


@dataclasses.dataclass(frozen=True)
class Range:
    label: str
    span: datetime.timedelta
    buckets: int
    time_format: str


RANGES = {
    r.label: r
    for r in (
        Range("1h", datetime.timedelta(hours=1), 12, "%H:%M"),
        Range("24h", datetime.timedelta(hours=24), 24, "%H:%M"),
        Range("7d", datetime.timedelta(days=7), 28, "%a %d"),
        Range("30d", datetime.timedelta(days=30), 30, "%b %d"),
    )
}
DEFAULT_RANGE = "24h"


def edges(span: Range, now: datetime.datetime) -> list[datetime.datetime]:
    """Bucket edges ending at the first bucket boundary after ``now`` (so they stay put
    between boundaries, and an idle dashboard re-renders identically)."""
    step = span.span / span.buckets
    epoch = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    end = epoch + step * ((now - epoch) // step + 1)
    return [end - step * (span.buckets - i) for i in range(span.buckets + 1)]


@dataclasses.dataclass(frozen=True)
class Dashboard:
    chart: charts.BarChart
    failed: list[queries.RunRow]
    late: list[queries.RunRow]
    upcoming: list[queries.RunRow]
    pools: list[queries.PoolHealth]


def _read(session: Session, span: Range, now: datetime.datetime) -> Dashboard:
    bucket_edges = edges(span, now)
    counts = queries.state_counts(session, bucket_edges, COUNT_CAP)
    failed = (StateType.FAILED, StateType.CRASHED)
    return Dashboard(
        chart=charts.bar_chart(counts, time_format=span.time_format),
        failed=queries.recent_runs_in(session, failed, bucket_edges[0], LIST_LIMIT),
        late=queries.late_runs(session, LIST_LIMIT),
        upcoming=queries.upcoming_runs(session, now, LIST_LIMIT),
        pools=queries.pool_health(session, now, POOL_LIMIT),
    )


async def _body(request: Request, range_label: str) -> Markup:
    span = RANGES.get(range_label) or RANGES[DEFAULT_RANGE]
    now = datetime.datetime.now(datetime.timezone.utc)
    data = await database(request).read(_read, span, now)
    return templating.live(
        "dashboard_body.html",
        f"/fragments/dashboard?range={span.label}",
        element_id="dashboard-live",
        data=data,
        range=span,
        count_cap=COUNT_CAP,
    )


@router.get("/")
async def dashboard_page(request: Request, range: str = DEFAULT_RANGE) -> Response:
    body = await _body(request, range)
    chosen = range if range in RANGES else DEFAULT_RANGE
    return templating.page(
        "dashboard.html", title="Dashboard", body=body, ranges=list(RANGES), chosen=chosen
    )


@router.get("/fragments/dashboard")
async def dashboard_fragment(request: Request, range: str = DEFAULT_RANGE) -> Response:
    return templating.live_response(request, await _body(request, range))
