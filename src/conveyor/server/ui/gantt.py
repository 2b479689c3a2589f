"""A flow run's timeline: its task runs and child runs as bars on one time axis.

Laid out here in percentages of the run's span; the template draws each bar as a
positioned element, so the chart needs no JavaScript and scales with the page.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Sequence

from conveyor.server.database import orm
from conveyor.server.ui.formatting import between

MIN_WIDTH = 0.4  # percent: an instant still shows as a sliver


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    kind: str  # "task" or "subflow"
    state_type: str | None
    state_name: str | None
    left: float
    width: float
    seconds: float | None
    link_id: uuid.UUID | None  # a child run's page


@dataclasses.dataclass(frozen=True)
class Timeline:
    rows: list[Row]
    start: datetime.datetime | None
    seconds: float
    truncated: bool


def _utc(value: datetime.datetime | None) -> datetime.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=datetime.timezone.utc)


def timeline(
    run: orm.FlowRun,
    task_runs: Sequence[orm.TaskRun],
    children: Sequence[orm.FlowRun],
    now: datetime.datetime,
    *,
    truncated: bool,
) -> Timeline:
    """Bars from each item's start (or creation) to its end (or ``now`` if unfinished)."""
    items: list[tuple[orm.TaskRun | orm.FlowRun, str]] = [
        *((t, "task") for t in task_runs),
        *((c, "subflow") for c in children),
    ]
    spans = []
    for item, kind in items:
        start = _utc(item.start_time) or _utc(item.created)
        end = _utc(item.end_time) or (now if item.start_time is not None else start)
        spans.append((item, kind, start, end))
    starts = [s for _, _, s, _ in spans if s is not None]
    ends = [e for _, _, _, e in spans if e is not None]
    origin = _utc(run.start_time) or (min(starts) if starts else None)
    if origin is None:
        return Timeline([], None, 0.0, truncated)
    origin = min([origin, *starts])
    finish = max([_utc(run.end_time) or now, *ends])
    total = max((finish - origin).total_seconds(), 0.001)
    rows = []
    for item, kind, start, end in sorted(spans, key=lambda s: (s[2] or origin, s[1])):
        begin = start or origin
        left = min((begin - origin).total_seconds() / total * 100, 100 - MIN_WIDTH)
        span = ((end or begin) - begin).total_seconds() / total * 100
        width = min(max(span, MIN_WIDTH), 100 - left)
        rows.append(
            Row(
                name=item.name,
                kind=kind,
                state_type=item.state_type,
                state_name=item.state_name,
                left=round(left, 3),
                width=round(width, 3),
                seconds=between(item.start_time, item.end_time),
                link_id=item.id if kind == "subflow" else None,
            )
        )
    return Timeline(rows, origin, total, truncated)
