"""What ``conveyor deployment run`` needs beyond the command: reading its options, and
following the run it made until the run is final."""

from __future__ import annotations

import datetime
import json
import re
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.client.api import ConveyorClient
    from conveyor.schemas.api import FlowRunRead

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_LEVELS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


def json_or_text(value: str) -> Any:
    """``3`` is 3, ``true`` is True, ``[1, 2]`` a list; anything that is not JSON, text."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def key_values(pairs: list[str], option: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` as ``{"a": 1, "b": "x"}``; ValueError naming ``option``."""
    found: dict[str, Any] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"{option} {pair!r}: write key=value.")
        found[key.strip()] = json_or_text(value)
    return found


def json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{option}: not JSON ({exc}).") from None
    if not isinstance(value, dict):
        raise ValueError(f"{option}: must be a JSON object, like '{{\"x\": 1}}'.")
    return value


def duration(text: str) -> datetime.timedelta:
    """``90s``, ``10m``, ``1h30m``, ``2d``: ValueError for anything else."""
    compact = text.strip().lower()
    matches = list(_DURATION.finditer(compact))
    if not matches or "".join(m.group(0) for m in matches) != compact.replace(" ", ""):
        raise ValueError(f"--start-in {text!r}: write a duration such as 90s, 10m, 1h30m or 2d.")
    return datetime.timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in map(_pair, matches)))


def _pair(match: re.Match[str]) -> tuple[str, str]:
    return match.group(1), match.group(2)


def instant(text: str, option: str = "--start-at") -> datetime.datetime:
    """An ISO 8601 time; without an offset it is local time."""
    # Python 3.10's fromisoformat does not read a trailing "Z".
    iso = text.strip()[:-1] + "+00:00" if text.strip().upper().endswith("Z") else text.strip()
    try:
        value = datetime.datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(
            f"{option} {text!r}: write an ISO time such as 2025-06-01T09:00."
        ) from None
    return value if value.tzinfo is not None else value.astimezone()


async def follow(client: ConveyorClient, run: FlowRunRead, poll_interval: float) -> FlowRunRead:
    """Print the run's logs as they come, under a live status line, until it is final."""
    from rich.console import Console
    from rich.live import Live
    from rich.markup import escape
    from rich.text import Text

    from conveyor.cli.runs import _state, _when
    from conveyor.deployments.run import watch_flow_run
    from conveyor.schemas.api import LogFilter

    console = Console(highlight=False)
    after: int | None = None
    last = run

    def status(current: FlowRunRead) -> Text:
        state = _state(current.state_type.value if current.state_type else None, current.state_name)
        return Text.from_markup(f"Flow run {escape(current.name)!r}: {state}")

    async def print_logs(run_id: uuid.UUID) -> None:
        nonlocal after
        while True:
            page = await client.filter_logs(LogFilter(flow_run_id=run_id, after_id=after))
            for line in page:
                level = _LEVELS.get(line.level, str(line.level))
                live.console.print(f"{_when(line.timestamp)} | {level:<7} | {escape(line.message)}")
                after = line.id
            if len(page) < 200:
                return

    with Live(status(run), console=console, transient=False, auto_refresh=False) as live:
        async for last in watch_flow_run(client, run.id, poll_interval=poll_interval):
            await print_logs(run.id)
            live.update(status(last), refresh=True)
        await print_logs(run.id)
    return last
