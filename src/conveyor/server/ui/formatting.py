"""How values read to a person: times, durations, counts, states (Jinja2 filters)."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from pydantic import TypeAdapter

_UTC = datetime.timezone.utc
_DURATION = TypeAdapter(datetime.timedelta)


def _aware(value: datetime.datetime) -> datetime.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=_UTC)


def when(value: datetime.datetime | None) -> str:
    """``2025-05-01 12:00:03`` (UTC), or a dash."""
    if value is None:
        return "—"
    return _aware(value).astimezone(_UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(value: datetime.datetime | None, now: datetime.datetime) -> str:
    """``5 min ago``, ``in 2 h``: whole minutes at least, so it changes rarely."""
    if value is None:
        return "—"
    seconds = (now - _aware(value)).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 60:
        return "in under a minute" if future else "just now"
    text = _coarse(seconds)
    return f"in {text}" if future else f"{text} ago"


def _coarse(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} days"


def duration(seconds: float | datetime.timedelta | None) -> str:
    """``850 ms``, ``4.2 s``, ``3 min 4 s``, ``2 h 3 min``."""
    if seconds is None:
        return "—"
    if isinstance(seconds, datetime.timedelta):
        seconds = seconds.total_seconds()
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def between(start: datetime.datetime | None, end: datetime.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (_aware(end) - _aware(start)).total_seconds()


def state_class(state_type: str | None) -> str:
    """The CSS class that colours a state: ``st-completed``, ``st-failed``, ..."""
    return f"st-{(state_type or 'none').lower()}"


def count(value: int, cap: int) -> str:
    """``1,234``, or ``1,000+`` when a capped query stopped at ``cap``."""
    return f"{cap:,}+" if value >= cap else f"{value:,}"


def short_id(value: uuid.UUID | str) -> str:
    return str(value)[:8]


def run_duration(
    start: datetime.datetime | None, end: datetime.datetime | None, now: datetime.datetime
) -> str:
    """How long a run took, or has taken so far (``3.2 s so far``); a dash if it never ran."""
    if start is None:
        return "—"
    if end is None:
        return f"{_coarse_or_seconds((now - _aware(start)).total_seconds())} so far"
    return duration(between(start, end))


def _coarse_or_seconds(seconds: float) -> str:
    # Whole seconds under a minute, whole minutes beyond: a live page re-renders rarely.
    return f"{int(seconds)} s" if seconds < 60 else _coarse(seconds)


def schedule_text(schedule: dict[str, Any]) -> str:
    """``cron 0 9 * * * (Europe/London)``, ``every 1 h 0 min (UTC)``, ``rrule ...``."""
    zone = schedule.get("timezone", "UTC")
    kind = schedule.get("kind")
    if kind == "cron":
        return f"cron {schedule.get('cron')} ({zone})"
    if kind == "interval":
        interval = schedule.get("interval")
        try:
            seconds = _DURATION.validate_python(interval).total_seconds()
            text = duration(seconds)
        except ValueError:
            text = str(interval)
        return f"every {text} ({zone})"
    if kind == "rrule":
        return f"rrule {schedule.get('rrule')} ({zone})"
    return str(schedule)
