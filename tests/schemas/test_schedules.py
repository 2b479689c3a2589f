"""Schedules: the instants they name, around DST changes above all, and their validation.

Expected instants are worked out by hand, in UTC. The changes used, in 2025:
New York springs forward on 9 March at 02:00 EST (07:00Z) and falls back on 2 November at
02:00 EDT (06:00Z); London springs forward on 30 March at 01:00 GMT (01:00Z) and falls
back on 26 October at 02:00 BST (01:00Z).
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from pydantic import BaseModel, TypeAdapter, ValidationError

from conveyor.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule, Schedule

NY = "America/New_York"
LONDON = "Europe/London"
UTC = timezone.utc
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def utc(month: int, day: int, hour: int, minute: int = 0, year: int = 2025) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def runs(schedule: Schedule, start: datetime, end: datetime, limit: int = 50) -> list[datetime]:
    found = schedule.occurrences(start, end, limit)
    assert all(t.tzinfo is UTC for t in found)
    return found


# Cron: nonexistent times run once when the jump ends, repeated times once, the first time.


def test_cron_daily_at_a_time_new_york_skips() -> None:
    schedule = CronSchedule(cron="30 2 * * *", timezone=NY)
    assert runs(schedule, utc(3, 8, 0), utc(3, 11, 0)) == [
        utc(3, 8, 7, 30),  # 02:30 EST
        utc(3, 9, 7, 0),  # 02:30 does not exist: 03:00 EDT, when the jump ends
        utc(3, 10, 6, 30),  # 02:30 EDT
    ]


def test_cron_daily_at_a_time_new_york_repeats() -> None:
    schedule = CronSchedule(cron="30 1 * * *", timezone=NY)
    assert runs(schedule, utc(11, 1, 0), utc(11, 4, 0)) == [
        utc(11, 1, 5, 30),  # 01:30 EDT
        utc(11, 2, 5, 30),  # 01:30 EDT, the first of two; not again at 06:30Z (EST)
        utc(11, 3, 6, 30),  # 01:30 EST
    ]


def test_cron_daily_at_a_time_london_skips_and_repeats() -> None:
    schedule = CronSchedule(cron="30 1 * * *", timezone=LONDON)
    assert runs(schedule, utc(3, 29, 0), utc(4, 1, 0)) == [
        utc(3, 29, 1, 30),  # 01:30 GMT
        utc(3, 30, 1, 0),  # 01:30 does not exist: 02:00 BST
        utc(3, 31, 0, 30),  # 01:30 BST
    ]
    assert runs(schedule, utc(10, 25, 0), utc(10, 28, 0)) == [
        utc(10, 25, 0, 30),  # 01:30 BST
        utc(10, 26, 0, 30),  # 01:30 BST, the first of two
        utc(10, 27, 1, 30),  # 01:30 GMT
    ]


def test_cron_hourly_new_york() -> None:
    schedule = CronSchedule(cron="0 * * * *", timezone=NY)
    # 23:00, 00:00, 01:00 EST, then 02:00 (which does not exist) and 03:00 are one run.
    spring = [utc(3, 9, hour) for hour in (4, 5, 6, 7, 8)]
    assert runs(schedule, utc(3, 9, 4), utc(3, 9, 9)) == spring
    # 23:00, 00:00, 01:00 EDT; 01:00 EST (06:00Z) is not run again; 02:00, 03:00 EST.
    autumn = [utc(11, 2, hour) for hour in (3, 4, 5, 7, 8)]
    assert runs(schedule, utc(11, 2, 3), utc(11, 2, 9)) == autumn


def test_cron_hourly_london() -> None:
    schedule = CronSchedule(cron="0 * * * *", timezone=LONDON)
    # 23:00, 00:00 GMT; 01:00 (nonexistent) and 02:00 BST are one run; 03:00, 04:00 BST.
    spring = [utc(3, 29, 23), utc(3, 30, 0), utc(3, 30, 1), utc(3, 30, 2), utc(3, 30, 3)]
    assert runs(schedule, utc(3, 29, 23), utc(3, 30, 4)) == spring
    # 23:00, 00:00, 01:00 BST; 01:00 GMT (01:00Z) is not run again; 02:00, 03:00 GMT.
    autumn = [utc(10, 25, 22), utc(10, 25, 23), utc(10, 26, 0), utc(10, 26, 2), utc(10, 26, 3)]
    assert runs(schedule, utc(10, 25, 22), utc(10, 26, 4)) == autumn


def test_a_run_moved_to_the_end_of_a_jump_counts_from_that_instant() -> None:
    # 02:30 on spring-forward day runs at 03:00 EDT, which a query from 03:00 EDT includes.
    schedule = CronSchedule(cron="30 2 * * *", timezone=NY)
    assert runs(schedule, utc(3, 9, 7), utc(3, 10, 0)) == [utc(3, 9, 7)]
    assert runs(schedule, utc(3, 9, 7, 1), utc(3, 10, 0)) == []


def test_a_query_from_inside_the_repeated_hour() -> None:
    # From 01:15 EST (the second 01:15), the 01:30 run was already at 01:30 EDT.
    schedule = CronSchedule(cron="*/30 * * * *", timezone=NY)
    assert runs(schedule, utc(11, 2, 6, 15), utc(11, 2, 7, 31)) == [
        utc(11, 2, 7),
        utc(11, 2, 7, 30),
    ]


def test_cron_day_or() -> None:
    # The 1st of the month and Mondays; with day_or=False, only a 1st that is a Monday.
    either = CronSchedule(cron="0 12 1 * mon", timezone="UTC")
    assert runs(either, utc(9, 1, 0), utc(9, 16, 0)) == [
        utc(9, 1, 12),  # a Monday and the 1st
        utc(9, 8, 12),
        utc(9, 15, 12),
    ]
    both = CronSchedule(cron="0 12 1 * mon", timezone="UTC", day_or=False)
    assert runs(both, utc(9, 1, 0), utc(12, 31, 0)) == [utc(9, 1, 12), utc(12, 1, 12)]


def test_cron_macros_and_nth_weekdays() -> None:
    assert runs(CronSchedule(cron="@daily", timezone=NY), utc(1, 1, 0), utc(1, 3, 0)) == [
        utc(1, 1, 5),
        utc(1, 2, 5),
    ]
    second_monday = CronSchedule(cron="0 9 * * 1#2")
    assert runs(second_monday, utc(1, 1, 0), utc(3, 1, 0)) == [utc(1, 13, 9), utc(2, 10, 9)]
    last_day = CronSchedule(cron="0 0 L * *")
    assert runs(last_day, utc(1, 1, 0), utc(3, 2, 0)) == [utc(1, 31, 0), utc(2, 28, 0)]


CRON_EXPRESSIONS = [
    "*/5 * * * *",
    "0 9 * * mon-fri",
    "0 0 L * *",
    "0 0 * * 1#2",
    "0 0 * * L5",
    "0 0 1,15 * sun",
    "0 0 */2 * *",
    "0 0 * * */2",
    "0 0 1-5 * 1",
    "15 3 * jan,jul *",
    "0 0 * * 1#2,1#4",
    "0 0 10-L/5 * *",
    "@weekly",
    "0 0 29 2 1",
    "0 0 13 * 5",
    "*/7 */5 * * *",
]


@pytest.mark.parametrize("day_or", [True, False])
@pytest.mark.parametrize("cron", CRON_EXPRESSIONS)
def test_cron_days_and_times_are_croniters(cron: str, day_or: bool) -> None:
    """In UTC, with no DST, the times are those croniter's own iterator gives."""
    expected = croniter(cron, datetime(2024, 1, 1) - timedelta(seconds=1), day_or=day_or)
    first = [expected.get_next(datetime).replace(tzinfo=UTC) for _ in range(30)]
    schedule = CronSchedule(cron=cron, day_or=day_or)
    assert runs(schedule, utc(1, 1, 0, year=2024), utc(1, 1, 0, year=9000), 30) == first


# Interval: shorter than a day (or not whole days) is exact; whole days keep the wall time.


@pytest.mark.parametrize("zone", [NY, LONDON])
def test_hourly_interval_is_every_3600_seconds_across_dst(zone: str) -> None:
    schedule = IntervalSchedule(interval=HOUR, timezone=zone)
    for start in (utc(3, 9, 3), utc(3, 30, 0), utc(10, 26, 0), utc(11, 2, 3)):
        found = runs(schedule, start, start + timedelta(hours=6))
        assert found == [start + timedelta(hours=n) for n in range(6)]


def test_daily_interval_keeps_the_wall_time() -> None:
    nine = datetime(2025, 1, 1, 9, tzinfo=ZoneInfo(NY))
    schedule = IntervalSchedule(interval=timedelta(days=1), anchor_date=nine, timezone=NY)
    assert runs(schedule, utc(3, 7, 0), utc(3, 11, 0)) == [
        utc(3, 7, 14),  # 09:00 EST
        utc(3, 8, 14),
        utc(3, 9, 13),  # 09:00 EDT
        utc(3, 10, 13),
    ]
    assert runs(schedule, utc(11, 1, 0), utc(11, 4, 0)) == [
        utc(11, 1, 13),
        utc(11, 2, 14),
        utc(11, 3, 14),
    ]


def test_daily_interval_at_a_skipped_or_repeated_time() -> None:
    half_two = datetime(2025, 1, 1, 2, 30, tzinfo=ZoneInfo(NY))
    skipped = IntervalSchedule(interval=DAY, anchor_date=half_two, timezone=NY)
    assert runs(skipped, utc(3, 8, 0), utc(3, 11, 0)) == [
        utc(3, 8, 7, 30),
        utc(3, 9, 7, 0),  # 03:00 EDT
        utc(3, 10, 6, 30),
    ]
    half_one = datetime(2025, 1, 1, 1, 30, tzinfo=UTC)  # 01:30 GMT
    repeated = IntervalSchedule(interval=DAY, anchor_date=half_one, timezone=LONDON)
    assert runs(repeated, utc(10, 25, 0), utc(10, 28, 0)) == [
        utc(10, 25, 0, 30),
        utc(10, 26, 0, 30),  # the first 01:30 (BST)
        utc(10, 27, 1, 30),
    ]


def test_the_anchor_is_read_in_the_schedules_timezone() -> None:
    # 14:00Z on 1 January is 09:00 in New York, so the schedule runs at 09:00 there.
    schedule = IntervalSchedule(interval=DAY, anchor_date=utc(1, 1, 14), timezone=NY)
    assert runs(schedule, utc(7, 1, 0), utc(7, 2, 0)) == [utc(7, 1, 13)]


def test_interval_defaults_and_phase() -> None:
    schedule = IntervalSchedule(interval=timedelta(days=1), timezone="Asia/Tokyo")
    assert schedule.anchor_date == datetime(2020, 1, 1, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert IntervalSchedule.model_validate({"interval": 90}).interval == timedelta(seconds=90)
    # 36 hours is not whole days, so it is exact; runs before the anchor count too.
    anchor = utc(6, 1, 12)
    every_36h = IntervalSchedule(interval=timedelta(hours=36), anchor_date=anchor, timezone=NY)
    assert runs(every_36h, utc(5, 30, 0), utc(6, 4, 0)) == [
        utc(5, 31, 0),
        utc(6, 1, 12),
        utc(6, 3, 0),
    ]


# RRule: in wall time, like cron.


def test_rrule_weekly_on_two_days() -> None:
    schedule = RRuleSchedule(rrule="FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0", timezone=LONDON)
    assert runs(schedule, utc(3, 20, 0), utc(4, 5, 0)) == [
        utc(3, 24, 9),  # Monday, 09:00 GMT
        utc(3, 26, 9),
        utc(3, 31, 8),  # 09:00 BST
        utc(4, 2, 8),
    ]


def test_rrule_dst() -> None:
    daily = RRuleSchedule(rrule="RRULE:FREQ=DAILY;BYHOUR=2;BYMINUTE=30", timezone=NY)
    assert runs(daily, utc(3, 8, 0), utc(3, 11, 0)) == [
        utc(3, 8, 7, 30),
        utc(3, 9, 7, 0),
        utc(3, 10, 6, 30),
    ]
    hourly = RRuleSchedule(rrule="FREQ=HOURLY", timezone=NY)
    assert runs(hourly, utc(11, 2, 3), utc(11, 2, 9)) == [utc(11, 2, h) for h in (3, 4, 5, 7, 8)]


def test_rrule_phase_dtstart_and_count() -> None:
    # Every 5 hours from 2020-01-01 00:00Z: 2516 days (60384 h, 4 past a multiple of 5)
    # later is 2026-11-21 00:00Z, so the next runs are at 01:00, 06:00 and 11:00.
    every_5h = RRuleSchedule(rrule="FREQ=HOURLY;INTERVAL=5")
    start = utc(11, 21, 0, year=2026)
    assert runs(every_5h, start, start + timedelta(hours=12)) == [
        utc(11, 21, h, year=2026) for h in (1, 6, 11)
    ]
    # Every other Monday from 6 January: 22 weeks later is 9 June.
    fortnightly = RRuleSchedule(rrule="DTSTART:20250106T093000\nRRULE:FREQ=WEEKLY;INTERVAL=2")
    assert runs(fortnightly, utc(6, 1, 0), utc(6, 30, 0)) == [utc(6, 9, 9, 30), utc(6, 23, 9, 30)]
    three = RRuleSchedule(rrule="DTSTART:20250101T090000\nRRULE:FREQ=DAILY;COUNT=3", timezone=NY)
    assert runs(three, utc(1, 1, 0), utc(1, 1, 0, year=2030)) == [
        utc(1, 1, 14),
        utc(1, 2, 14),
        utc(1, 3, 14),
    ]


# Bounds and arguments.


def test_start_is_included_end_is_not_and_limit_counts() -> None:
    schedule = CronSchedule(cron="0 * * * *")
    assert runs(schedule, utc(1, 1, 0), utc(1, 1, 3)) == [utc(1, 1, 0), utc(1, 1, 1), utc(1, 1, 2)]
    assert runs(schedule, utc(1, 1, 0), utc(1, 2, 0), limit=2) == [utc(1, 1, 0), utc(1, 1, 1)]
    assert runs(schedule, utc(1, 1, 0), utc(1, 2, 0), limit=0) == []
    assert runs(schedule, utc(1, 2, 0), utc(1, 1, 0)) == []
    # Bounds in any timezone are the same instants.
    tokyo = ZoneInfo("Asia/Tokyo")
    start = datetime(2025, 1, 1, 9, 30, tzinfo=tokyo)  # 00:30Z
    assert runs(schedule, start, start + timedelta(hours=1)) == [utc(1, 1, 1)]


def test_open_ended_queries() -> None:
    schedule = IntervalSchedule(interval=HOUR)
    far = runs(
        schedule,
        datetime.max.replace(tzinfo=UTC) - timedelta(days=3650),
        datetime.max.replace(tzinfo=UTC),
    )
    assert far == []  # no run is computed past the year 9990
    assert runs(
        CronSchedule(cron="0 0 1 1 *"), datetime.min.replace(tzinfo=UTC), utc(1, 1, 0, year=3), 1
    ) == [utc(1, 1, 0, year=2)]


@pytest.mark.parametrize(
    "start,end",
    [
        (datetime(2025, 1, 1), utc(1, 2, 0)),
        (utc(1, 1, 0), datetime(2025, 1, 2)),
    ],
)
def test_naive_bounds_are_refused(start: datetime, end: datetime) -> None:
    with pytest.raises(ValueError, match="start and end must be timezone-aware"):
        CronSchedule(cron="0 * * * *").occurrences(start, end, 10)


@pytest.mark.parametrize(
    "schedule",
    [
        CronSchedule(cron="*/5 * * * *", timezone=NY),
        CronSchedule(cron="0 0 1 * *", timezone=NY),
        IntervalSchedule(interval=timedelta(days=1), timezone=NY),
        RRuleSchedule(rrule="FREQ=MINUTELY;INTERVAL=15", timezone=NY),
        RRuleSchedule(rrule="FREQ=MONTHLY;BYMONTHDAY=-1", timezone=NY),
    ],
    ids=lambda schedule: str(schedule),
)
def test_a_hundred_runs_take_well_under_10_ms(schedule: Schedule) -> None:
    start = utc(11, 21, 0, year=2026)
    schedule.occurrences(start, start + timedelta(days=36500), 100)  # parse and cache
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        found = schedule.occurrences(start, start + timedelta(days=36500), 100)
        best = min(best, time.perf_counter() - began)
    assert len(found) == 100
    assert best < 0.010


# The union, and validation.


class Deployment(BaseModel):
    schedules: list[Schedule]


def test_the_union_round_trips_through_json() -> None:
    deployment = Deployment(
        schedules=[
            CronSchedule(cron="0 9 * * mon-fri", timezone=NY, day_or=False),
            IntervalSchedule(interval=timedelta(seconds=90.5), timezone=LONDON),
            IntervalSchedule(interval=timedelta(days=1), anchor_date=utc(1, 1, 14)),
            RRuleSchedule(rrule="FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9", timezone=NY),
        ]
    )
    again = Deployment.model_validate_json(deployment.model_dump_json())
    assert again == deployment
    assert [type(s) for s in again.schedules] == [
        CronSchedule,
        IntervalSchedule,
        IntervalSchedule,
        RRuleSchedule,
    ]
    parsed = TypeAdapter(Schedule).validate_python({"kind": "interval", "interval": 60})
    assert parsed == IntervalSchedule(interval=timedelta(minutes=1))


@pytest.mark.parametrize(
    "data,field,message",
    [
        ({"kind": "cron", "cron": "61 * * * *"}, "cron", "'61 * * * *' is not a valid cron"),
        ({"kind": "cron", "cron": "every day"}, "cron", "it needs 5 fields"),
        ({"kind": "cron", "cron": "* * * * * *"}, "cron", "it needs 5 fields"),
        ({"kind": "cron", "cron": "0 0 30 2 *"}, "cron", "'0 0 30 2 *' never runs"),
        (
            {"kind": "cron", "cron": "0 0 1 * 1#2", "day_or": False},
            "cron",
            "'0 0 1 * 1#2' never runs",
        ),
        ({"kind": "cron", "cron": "H 0 * * *"}, "cron", "uses H (hashed) or R (random)"),
        ({"kind": "cron", "cron": "R 0 * * *"}, "cron", "uses H (hashed) or R (random)"),
        ({"kind": "cron", "cron": "0 0 15W * *"}, "cron", "uses W (nearest weekday)"),
        ({"kind": "cron", "cron": "0 0 * * *", "timezone": "Mars/Base"}, "timezone", "unknown"),
        ({"kind": "interval", "interval": 0}, "interval", "the interval must be positive"),
        ({"kind": "interval", "interval": "-PT1H"}, "interval", "the interval must be positive"),
        (
            {"kind": "interval", "interval": 60, "timezone": "America"},
            "timezone",
            "unknown timezone 'America': use an IANA name",
        ),
        (
            {"kind": "interval", "interval": 60, "anchor_date": "2025-01-01T00:00:00"},
            "anchor_date",
            "timezone info",
        ),
        ({"kind": "rrule", "rrule": "every day"}, "rrule", "'every day' is not an RFC 5545 rrule"),
        ({"kind": "rrule", "rrule": "FREQ=SOMETIMES"}, "rrule", "invalid 'FREQ'"),
        (
            {"kind": "rrule", "rrule": "DTSTART;TZID=America/New_York:20250101T090000\nFREQ=DAILY"},
            "rrule",
            "the rrule names a time zone",
        ),
        (
            {"kind": "rrule", "rrule": "FREQ=DAILY;UNTIL=20250101T000000Z"},
            "rrule",
            "the rrule names a time zone",
        ),
        (
            {"kind": "rrule", "rrule": "RRULE:FREQ=DAILY\nEXDATE:20250102T000000"},
            "rrule",
            "not a set",
        ),
        ({"kind": "cron", "cron": "0 0 * * *", "tz": NY}, "tz", "Extra inputs"),
    ],
)
def test_bad_schedules_are_refused_naming_the_field(
    data: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(Schedule).validate_python(data)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    assert errors[0]["loc"] == (data["kind"], field)
    assert message in errors[0]["msg"]


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValidationError, match="'cron', 'interval', 'rrule'"):
        TypeAdapter(Schedule).validate_python({"kind": "sometimes"})


def test_importing_schedules_loads_no_cron_or_rrule_library() -> None:
    code = "import sys, conveyor.schemas.schedules; print(sorted(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "croniter" not in loaded.stdout
    assert "dateutil" not in loaded.stdout
