"""The UI's pure parts: chart and timeline layout, and values written for people."""

from __future__ import annotations

import datetime
import uuid

from conveyor.server.database import orm
from conveyor.server.models.dashboard import StateCounts
from conveyor.server.ui import charts, formatting, gantt
from conveyor.server.ui.dashboard import RANGES, edges

T0 = datetime.datetime(2025, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)


def _at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def test_bars_stack_states_and_the_tallest_fills_the_plot() -> None:
    data = StateCounts(
        edges=[_at(0), _at(60), _at(120)],
        counts=[{"COMPLETED": 3, "FAILED": 1}, {"COMPLETED": 2}],
        capped=[],
    )
    chart = charts.bar_chart(data, time_format="%H:%M")
    first, second = chart.bars
    assert (first.total, second.total, chart.peak, chart.total) == (4, 2, 4, 6)
    assert [s.state for s in first.segments] == ["COMPLETED", "FAILED"]  # completed at the bottom
    assert sum(s.height for s in first.segments) == chart.plot_height
    assert first.segments[0].y + first.segments[0].height == chart.plot_height
    assert second.segments[0].height == chart.plot_height / 2
    assert chart.states == ["COMPLETED", "FAILED"]


def test_bucket_edges_stay_put_between_boundaries() -> None:
    span = RANGES["24h"]
    one = edges(span, _at(10))
    assert one == edges(span, _at(3000))  # same hour: the same edges, the same rendering
    assert len(one) == 25 and one[-1] == _at(3600) and one[0] == _at(3600) - span.span


def _task(name: str, start: float | None, end: float | None) -> orm.TaskRun:
    return orm.TaskRun(
        id=uuid.uuid4(),
        name=name,
        state_type="COMPLETED" if end is not None else "RUNNING",
        state_name="Completed" if end is not None else "Running",
        start_time=_at(start) if start is not None else None,
        end_time=_at(end) if end is not None else None,
        created=_at(start or 0),
    )


def test_the_timeline_places_bars_on_the_runs_span() -> None:
    run = orm.FlowRun(id=uuid.uuid4(), start_time=_at(0), end_time=None, created=_at(0))
    tasks = [_task("late", 5, None), _task("early", 0, 5)]
    line = gantt.timeline(run, tasks, [], now=_at(10), truncated=False)
    assert [r.name for r in line.rows] == ["early", "late"]  # by start
    early, late = line.rows
    assert (early.left, early.width, early.seconds) == (0.0, 50.0, 5.0)
    assert (late.left, late.width, late.seconds) == (50.0, 50.0, None)  # still running
    assert line.seconds == 10.0


def test_an_instant_still_shows_and_never_overflows() -> None:
    run = orm.FlowRun(id=uuid.uuid4(), start_time=_at(0), end_time=_at(10), created=_at(0))
    line = gantt.timeline(run, [_task("blip", 10, 10)], [], now=_at(20), truncated=False)
    (blip,) = line.rows
    assert blip.width == gantt.MIN_WIDTH and blip.left + blip.width <= 100


def test_values_read_for_people() -> None:
    assert formatting.duration(0.25) == "250 ms"
    assert formatting.duration(4.21) == "4.2 s"
    assert formatting.duration(184) == "3 min 4 s"
    assert formatting.duration(7380) == "2 h 3 min"
    assert formatting.ago(_at(0), _at(30)) == "just now"
    assert formatting.ago(_at(0), _at(300)) == "5 min ago"
    assert formatting.ago(_at(7200), _at(0)) == "in 2 h"
    assert formatting.count(999, 1000) == "999" and formatting.count(1000, 1000) == "1,000+"
    assert formatting.run_duration(_at(0), None, _at(12.7)) == "12 s so far"
    assert formatting.run_duration(None, None, _at(1)) == "—"
