"""Deployment schedules (cron, interval, rrule) and the instants they name.

``schedule.occurrences(start, end, limit)`` returns the first ``limit`` scheduled instants
``t`` with ``start <= t < end``, as aware UTC datetimes, sorted and without duplicates.

Daylight saving time. Cron and rrule schedules, and interval schedules whose interval is a
whole number of days, name wall-clock times in ``timezone``. Each one runs at the first
instant the clock there shows that time or later, so:

* a time the clock skips (02:30 on a spring-forward day in New York) runs once, when the
  jump ends (03:00 EDT);
* a time the clock shows twice (01:30 on a fall-back day) runs once, the first time
  (01:30 EDT), so an hourly cron runs once at 01:00 that day, not twice;
* wall times that fall on the same instant run once: on spring-forward day an hourly cron's
  02:00 and 03:00 both mean 03:00 EDT.

Other intervals are exact durations from ``anchor_date``: every hour is every 3600 s.

Libraries: croniter parses and validates cron expressions (cronsim has no ``day_or`` and
needs Python 3.11). Its iterator is not used: it costs ~80 us a step, too slow for a
scheduler reading ahead, and given aware datetimes it runs a repeated 01:30 twice. The wall
times are generated here from croniter's expanded fields and resolved with zoneinfo.
python-dateutil evaluates rrules, also in naive wall time. Both are imported lazily.
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from conveyor.schemas.base import ConveyorModel

if TYPE_CHECKING:
    from dateutil.rrule import rrule

__all__ = ["CronSchedule", "IntervalSchedule", "RRuleSchedule", "Schedule"]

_UTC = timezone.utc
_TICK = timedelta(microseconds=1)
_DAY = timedelta(days=1)
# No clock has been set back by more than a day, so a wall time this far past the reading
# at ``end`` names an instant after ``end``.
_SLACK = timedelta(days=2)
_EPOCH = datetime(2020, 1, 1)
# Queries are clamped to these years, so that datetime.min and .max can mean "no bound".
_FIRST, _LAST = (datetime(year, 1, 1, tzinfo=_UTC) for year in (2, 9990))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # not found, malformed, or a directory
        raise ValueError(
            f"unknown timezone {name!r}: use an IANA name such as 'Europe/London' or 'UTC'"
        ) from None


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _resolve(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) at which the clock in ``zone`` shows ``wall`` or later."""
    first = wall.replace(tzinfo=zone)  # fold=0: the earlier of two readings of a time
    before, after = first.utcoffset(), first.replace(fold=1).utcoffset()
    assert before is not None and after is not None
    if after <= before:  # the clock shows this time once, or twice
        return first.astimezone(_UTC)
    # The clock jumped over ``wall``; zoneinfo does not expose when, so bisect for it.
    lo, hi = wall - after, wall - before  # as UTC: the jump is in (lo, hi]
    while hi - lo > _TICK:
        mid = lo + (hi - lo) // 2
        if mid.replace(tzinfo=_UTC).astimezone(zone).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return hi.replace(tzinfo=_UTC)


class _Schedule(ConveyorModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        _zone(value)
        return value

    def occurrences(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """The first ``limit`` scheduled instants in ``[start, end)``, in UTC, sorted."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware datetimes")
        start, end = max(start, _FIRST), min(end, _LAST)
        found: list[datetime] = []
        for instant in self._instants(start, end):
            if instant >= end or len(found) >= limit:
                break
            if instant >= start and (not found or instant > found[-1]):
                found.append(instant)
        return found

    def _instants(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Non-decreasing UTC instants, all of those in [start, end) among them."""
        zone = ZoneInfo(self.timezone)
        # Wall times before this one name instants before ``start``.
        begin = _wall(start - _TICK, zone)
        for wall in self._walls(begin, _wall(end, zone) + _SLACK):
            yield _resolve(wall, zone)

    def _walls(self, begin: datetime, stop: datetime) -> Iterator[datetime]:
        """Increasing naive wall times from ``begin`` (or a little before) to ``stop``."""
        raise NotImplementedError


class _CronFields(NamedTuple):
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int] | None  # None: any day of the month
    last_day: bool
    months: frozenset[int] | None
    weekdays: frozenset[int] | None  # 0 is Sunday
    nth_weekdays: dict[int, set[int | str]]  # weekday -> {n, or "l" for the last}
    day_or: bool

    def days_in(self, year: int, month: int) -> list[int]:
        """The days of a month that match, or none if the month does not."""
        if self.months is not None and month not in self.months:
            return []
        monday_first, length = calendar.monthrange(year, month)
        return [d for d in range(1, length + 1) if self._matches(d, (monday_first + d) % 7, length)]

    def _matches(self, day: int, weekday: int, length: int) -> bool:  # weekday: 0 is Sunday
        in_month = self.days is None or day in self.days or (self.last_day and day == length)
        if self.nth_weekdays:
            nths = self.nth_weekdays.get(weekday, set())
            in_week = (day + 6) // 7 in nths or ("l" in nths and day + 7 > length)
        else:
            in_week = self.weekdays is None or weekday in self.weekdays
        # Cron's rule: when both day fields are restricted, either may match.
        if self.day_or and self.days is not None and self.weekdays is not None:
            return in_month or in_week
        return in_month and in_week

    def walls(self, begin: datetime, stop: datetime) -> Iterator[datetime]:
        year, month = begin.year, begin.month
        while (year, month) <= (stop.year, stop.month):
            for day in self.days_in(year, month):
                if (year, month, day) < (begin.year, begin.month, begin.day):
                    continue
                for hour in self.hours:
                    for minute in self.minutes:
                        wall = datetime(year, month, day, hour, minute)
                        if wall >= begin:
                            yield wall
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)


# H needs a hash id in croniter, and R names other times each time it is read.
_HASHED_OR_RANDOM = re.compile(r"(?:^|,)[HR](?:$|[,(/])", re.IGNORECASE)


@functools.lru_cache(maxsize=512)
def _cron_fields(cron: str, day_or: bool) -> _CronFields:
    from croniter import croniter

    fields = cron.split()
    if not cron.startswith("@") and len(fields) != 5:
        raise ValueError(
            f"{cron!r} is not a cron expression: it needs 5 fields (minute hour "
            f"day-of-month month day-of-week), not {len(fields)}"
        )
    if any(_HASHED_OR_RANDOM.search(field) for field in fields):
        raise ValueError(f"{cron!r} uses H (hashed) or R (random), which schedules do not support")
    if len(fields) == 5 and "W" in fields[2].upper():  # croniter's expand() drops it
        raise ValueError(f"{cron!r} uses W (nearest weekday), which schedules do not support")
    try:
        (minutes, hours, days, months, weekdays), nth = croniter.expand(cron)
    except (ValueError, TypeError) as exc:  # croniter's errors subclass these
        raise ValueError(f"{cron!r} is not a valid cron expression ({exc})") from None

    def values(field: list[Any]) -> frozenset[int] | None:
        return None if field == ["*"] else frozenset(v for v in field if isinstance(v, int))

    def every(field: list[Any], count: int) -> tuple[int, ...]:
        return tuple(sorted(values(field) or range(count)))

    return _CronFields(
        minutes=every(minutes, 60),
        hours=every(hours, 24),
        days=values(days),
        last_day="l" in days,
        months=values(months),
        weekdays=values(weekdays),
        nth_weekdays={int(k): set(v) for k, v in nth.items()},
        day_or=day_or,
    )


class CronSchedule(_Schedule):
    """A five-field cron expression or a macro (@daily), read in the wall time of ``timezone``.

    With ``day_or`` (cron's rule), an expression restricting both the day of the month and
    the day of the week runs on days matching either; without it, on days matching both.
    """

    kind: Literal["cron"] = "cron"
    day_or: bool = True  # before ``cron``, so that cron's validator can see it
    cron: str

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str, info: ValidationInfo) -> str:
        cron = " ".join(cron.split())
        fields = _cron_fields(cron, info.data.get("day_or", True))
        # 28 years hold every kind of year (leap or not, starting on any weekday).
        if next(fields.walls(_EPOCH, _EPOCH.replace(year=2048)), None) is None:
            raise ValueError(f"{cron!r} never runs: no date matches it")
        return cron

    def _walls(self, begin: datetime, stop: datetime) -> Iterator[datetime]:
        return _cron_fields(self.cron, self.day_or).walls(begin, stop)


class IntervalSchedule(_Schedule):
    """Every ``interval`` from ``anchor_date``, before and after it.

    A whole number of days keeps the anchor's wall time in ``timezone`` (daily at 09:00
    stays at 09:00 across DST changes); any other interval is an exact duration.
    """

    kind: Literal["interval"] = "interval"
    interval: timedelta
    # Missing or None: 2020-01-01 00:00 in ``timezone`` (see _default_anchor).
    anchor_date: AwareDatetime = _EPOCH.replace(tzinfo=_UTC)

    @model_validator(mode="before")
    @classmethod
    def _default_anchor(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("anchor_date") is None:
            try:
                zone = _zone(data.get("timezone", "UTC"))
            except (ValueError, TypeError):  # the timezone field reports it
                zone = ZoneInfo("UTC")
            data = {**data, "anchor_date": _EPOCH.replace(tzinfo=zone)}
        return data

    @field_validator("interval")
    @classmethod
    def _positive(cls, interval: timedelta) -> timedelta:
        if interval <= timedelta(0):
            raise ValueError(f"the interval must be positive, not {interval.total_seconds()} s")
        return interval

    def _instants(self, start: datetime, end: datetime) -> Iterator[datetime]:
        if self.interval % _DAY:
            anchor = self.anchor_date.astimezone(_UTC)
            # Round up: the first k with anchor + k * interval >= start.
            instant = anchor - (anchor - start) // self.interval * self.interval
            while instant < end:
                yield instant
                instant += self.interval
        else:
            yield from super()._instants(start, end)

    def _walls(self, begin: datetime, stop: datetime) -> Iterator[datetime]:
        anchor = _wall(self.anchor_date, ZoneInfo(self.timezone))
        wall = anchor - (anchor - begin) // self.interval * self.interval
        while wall <= stop:
            yield wall
            wall += self.interval


# A zone inside the rule text would compete with ``timezone``: RFC 5545 "floating" times only.
_ZONED = re.compile(r"TZID=|\d{8}T\d{6}Z", re.IGNORECASE)


@functools.lru_cache(maxsize=512)
def _parse_rrule(text: str) -> rrule:
    from dateutil.rrule import rrule, rrulestr

    if _ZONED.search(text):
        raise ValueError(
            "the rrule names a time zone (TZID= or a time ending in Z): give local times "
            "and set the timezone field instead"
        )
    try:
        rule = rrulestr(text, dtstart=_EPOCH)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(
            f"{text!r} is not an RFC 5545 rrule like 'FREQ=WEEKLY;BYDAY=MO;BYHOUR=9' ({exc})"
        ) from None
    if not isinstance(rule, rrule):
        raise ValueError("the rrule must be one RRULE (with an optional DTSTART), not a set")
    return rule


def _skip_ahead(rule: rrule, begin: datetime) -> rrule:
    """``rule`` from a DTSTART shortly before ``begin``, naming the same times after it.

    dateutil walks every period from DTSTART (0.3 s for an hourly rule from 2020 to now).
    Moving DTSTART by whole periods keeps the phase. COUNT counts from DTSTART, so it is
    left alone, as are months and years, which vary in length and are cheap to walk.
    """
    from dateutil.rrule import DAILY, HOURLY, MINUTELY, SECONDLY, WEEKLY

    periods = {
        WEEKLY: timedelta(weeks=1),
        DAILY: _DAY,
        HOURLY: timedelta(hours=1),
        MINUTELY: timedelta(minutes=1),
        SECONDLY: timedelta(seconds=1),
    }
    # dateutil keeps these private; they have not changed since 2003.
    dtstart: datetime = rule._dtstart  # type: ignore[attr-defined]
    period = periods.get(rule._freq)  # type: ignore[attr-defined]
    if period is None or rule._count is not None or begin <= dtstart:  # type: ignore[attr-defined]
        return rule
    period *= rule._interval  # type: ignore[attr-defined]
    return rule.replace(dtstart=dtstart + (begin - dtstart) // period * period)


class RRuleSchedule(_Schedule):
    """An RFC 5545 recurrence rule, read in the wall time of ``timezone``.

    For example ``FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0``. Without a ``DTSTART``
    line the rule starts at 2020-01-01 00:00, which also gives the time of day where the
    rule sets none.
    """

    kind: Literal["rrule"] = "rrule"
    rrule: str

    @field_validator("rrule")
    @classmethod
    def _valid_rrule(cls, text: str) -> str:
        text = text.strip()
        _parse_rrule(text)
        return text

    def _walls(self, begin: datetime, stop: datetime) -> Iterator[datetime]:
        for wall in _skip_ahead(_parse_rrule(self.rrule), begin).xafter(begin, inc=True):
            if wall > stop:
                return
            yield wall


Schedule = Annotated[CronSchedule | IntervalSchedule | RRuleSchedule, Field(discriminator="kind")]
