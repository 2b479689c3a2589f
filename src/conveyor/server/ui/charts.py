"""The dashboard's bar chart, laid out here and drawn as SVG by its template.

No JavaScript chart library: the server knows every number, so it places every bar.
"""

from __future__ import annotations

import dataclasses
import datetime

from conveyor.schemas.states import StateType
from conveyor.server.models.dashboard import StateCounts

# Bottom to top in each stacked bar.
STACK_ORDER = (
    StateType.COMPLETED,
    StateType.RUNNING,
    StateType.PENDING,
    StateType.SCHEDULED,
    StateType.PAUSED,
    StateType.CANCELLING,
    StateType.CANCELLED,
    StateType.CRASHED,
    StateType.FAILED,
)

WIDTH = 1000
HEIGHT = 200
AXIS = 24  # room under the bars for the time labels
LABELS = 6  # time labels along the axis


@dataclasses.dataclass(frozen=True)
class Segment:
    state: str
    count: int
    y: float
    height: float


@dataclasses.dataclass(frozen=True)
class Bar:
    x: float
    width: float
    start: datetime.datetime
    end: datetime.datetime
    total: int
    segments: list[Segment]


@dataclasses.dataclass(frozen=True)
class Label:
    x: float
    text: str


@dataclasses.dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    plot_height: int
    bars: list[Bar]
    labels: list[Label]
    peak: int
    total: int
    states: list[str]
    capped: list[str]


def bar_chart(data: StateCounts, *, time_format: str) -> BarChart:
    """Stacked bars, one per bucket, scaled so the tallest fills the plot."""
    plot = HEIGHT - AXIS
    buckets = len(data.counts)
    slot = WIDTH / max(buckets, 1)
    peak = max((sum(c.values()) for c in data.counts), default=0)
    scale = plot / peak if peak else 0.0
    bars = []
    for index, counts in enumerate(data.counts):
        y = float(plot)
        segments = []
        for state in STACK_ORDER:
            number = counts.get(state.value, 0)
            if not number:
                continue
            height = number * scale
            y -= height
            segments.append(Segment(state.value, number, round(y, 2), round(height, 2)))
        bars.append(
            Bar(
                x=round(index * slot + slot * 0.1, 2),
                width=round(slot * 0.8, 2),
                start=data.edges[index],
                end=data.edges[index + 1],
                total=sum(counts.values()),
                segments=segments,
            )
        )
    step = max(buckets // LABELS, 1)
    labels = [
        Label(round(i * slot, 2), data.edges[i].strftime(time_format))
        for i in range(0, buckets, step)
    ]
    seen = {state for counts in data.counts for state in counts}
    return BarChart(
        width=WIDTH,
        height=HEIGHT,
        plot_height=plot,
        bars=bars,
        labels=labels,
        peak=peak,
        total=sum(bar.total for bar in bars),
        states=[s.value for s in STACK_ORDER if s.value in seen],
        capped=data.capped,
    )
