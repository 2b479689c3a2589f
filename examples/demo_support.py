"""What ``demo.py`` is made of: the processes it starts and the tables of runs it shows."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from conveyor.client.api import ConveyorClient
from conveyor.schemas.api import FlowRunFilter, FlowRunRead, FlowRunSort
from conveyor.schemas.deployments import DeploymentRead
from conveyor.schemas.states import TERMINAL_STATE_TYPES, StateType

CLI = (sys.executable, "-m", "conveyor")
COLOURS = {
    StateType.COMPLETED: "green",
    StateType.FAILED: "red",
    StateType.CRASHED: "red",
    StateType.CANCELLED: "grey50",
    StateType.CANCELLING: "grey50",
    StateType.RUNNING: "blue",
    StateType.PENDING: "grey70",
    StateType.SCHEDULED: "yellow",
    StateType.PAUSED: "yellow",
}

console = Console(highlight=False)


class DemoError(Exception):
    """A step failed; the message says what to do."""


class Stopped(Exception):
    """Ctrl-C (or SIGTERM, SIGHUP) came while the demo was setting up."""


# -- processes ----------------------------------------------------------------------------
@dataclass
class Child:
    """A process the demo started, in a session of its own (so Ctrl-C reaches only the
    demo, which stops its children in order), with its output in ``log``."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, argv: Sequence[str], env: dict[str, str], log: Path) -> Child:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(name, proc, log)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def signal(self, signum: int) -> None:
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signum)

    def tail(self, lines: int = 3) -> str:
        """The last lines of its output, on one line."""
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " / ".join(line.strip() for line in text[-lines:])

    async def wait(self, timeout: float) -> bool:
        """Whether the process has exited within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.running and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return not self.running

    async def stop(self, first: int, grace: float, second: int | None = None) -> None:
        """Send ``first``; after ``grace`` seconds ``second`` (if given) and 10 s more;
        then SIGKILL to its whole process group."""
        self.signal(first)
        if await self.wait(grace):
            return
        if second is not None:
            self.signal(second)
            if await self.wait(10):
                return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        await self.wait(5)


@dataclass
class Stopper:
    """Counts SIGINT/SIGTERM/SIGHUP: the first asks the demo to stop; a second, while the
    worker waits for its runs in progress, has the worker kill them."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    count: int = 0
    worker: Child | None = None

    def __call__(self) -> None:
        self.count += 1
        self.event.set()
        if self.count > 1 and self.worker is not None:
            self.worker.signal(signal.SIGTERM)

    def check(self) -> None:
        """Raise Stopped if asked to stop."""
        if self.event.is_set():
            raise Stopped

    async def sleep(self, seconds: float) -> None:
        """Sleep, or return at once when asked to stop."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.event.wait(), seconds)


async def cli(*args: str, env: dict[str, str], show: str | None = None) -> str:
    """Run ``conveyor ARGS``, print it (as ``show`` if given) and return its output;
    DemoError with its error line if it fails."""
    console.print(f"[dim]$ {escape(show or ' '.join(('conveyor', *args)))}[/dim]")
    proc = await asyncio.to_thread(
        subprocess.run,
        [*CLI, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,
    )
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()
        raise DemoError(f"`conveyor {' '.join(args)}` failed: {lines[-1]}")
    return proc.stdout


def conveyor_answers(api_url: str) -> bool:
    """Whether a Conveyor server answers at ``api_url`` (``http://host:port/api``)."""
    try:
        response = httpx.get(f"{api_url}/health", timeout=2.0)
        return response.status_code == 200 and response.json().get("status") == "ok"
    except (httpx.HTTPError, ValueError):
        return False


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def relative(path: Path) -> Path:
    """``path`` from the current directory when it is under it (for commands to copy)."""
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def command_name() -> str:
    """How the user types the ``conveyor`` command that belongs to this Python."""
    script = Path(sys.executable).with_name("conveyor")
    on_path = shutil.which("conveyor")
    if on_path is not None and Path(on_path).resolve() == script.resolve():
        return "conveyor"
    if script.exists():
        return str(relative(script))
    return "python -m conveyor"


# -- runs ---------------------------------------------------------------------------------
def full_name(deployment: DeploymentRead) -> str:
    return f"{deployment.flow_name}/{deployment.name}"


def is_final(run: FlowRunRead) -> bool:
    return run.state_type in TERMINAL_STATE_TYPES


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _to_come(run: FlowRunRead, now: datetime.datetime) -> bool:
    return (
        run.state_type is StateType.SCHEDULED
        and run.expected_start_time is not None
        and run.expected_start_time > now
    )


async def recent_runs(client: ConveyorClient, since: datetime.datetime) -> list[FlowRunRead]:
    """Top-level runs made since ``since`` and due by now, in the order they were due.

    Subflow runs are left out (``conveyor flow-run ls`` lists them), and so are scheduled
    runs still to come (``upcoming``)."""
    now = _utcnow()
    runs = await client.filter_flow_runs(FlowRunFilter(created_after=since, limit=200))
    shown = [r for r in runs if r.parent_flow_run_id is None and not _to_come(r, now)]
    return sorted(shown, key=lambda r: r.expected_start_time or r.created)


async def upcoming(client: ConveyorClient, deployment: DeploymentRead) -> list[FlowRunRead]:
    """The deployment's Scheduled runs still to come, soonest first."""
    now = _utcnow()
    runs = await client.filter_flow_runs(
        FlowRunFilter(
            deployment_id=[deployment.id],
            state_type=[StateType.SCHEDULED],
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=200,
        )
    )
    return sorted((r for r in runs if _to_come(r, now)), key=lambda r: r.expected_start_time or now)


def _duration(run: FlowRunRead) -> str:
    if run.start_time is None:
        return "-"
    end = run.end_time or _utcnow()
    return f"{(end - run.start_time).total_seconds():.1f}s"


def _clock(value: datetime.datetime | None) -> str:
    return value.astimezone().strftime("%H:%M:%S") if value is not None else "-"


def runs_table(runs: Sequence[FlowRunRead], names: dict[uuid.UUID, str], title: str) -> Table:
    """One row per run; ``names`` maps deployment ids to ``flow/deployment``."""
    table = Table(title=title, title_justify="left")
    for column in ("Flow run", "Flow", "Deployment", "Made by", "State", "Started", "Duration"):
        table.add_column(column, no_wrap=column in ("Flow run", "State", "Duration"))
    for run in runs:
        colour = COLOURS.get(run.state_type, "white") if run.state_type else "white"
        state = run.state_name or (run.state_type.value if run.state_type else "-")
        if run.deployment_id is None:
            deployment, made_by = "-", "python (in-process)"
        else:
            deployment = names.get(run.deployment_id, "?")
            made_by = "schedule" if run.auto_scheduled else "deployment run"
        table.add_row(
            escape(run.name),
            escape(run.flow_name or "-"),
            escape(deployment),
            made_by,
            f"[{colour}]{escape(state)}[/{colour}]",
            _clock(run.start_time),
            _duration(run),
        )
    return table


def next_runs_line(
    deployments: Sequence[DeploymentRead], soonest: dict[uuid.UUID, FlowRunRead | None]
) -> Text:
    """When each scheduled deployment runs next."""
    parts = []
    for deployment in deployments:
        run = soonest.get(deployment.id)
        when = _clock(run.expected_start_time) if run is not None else "(not scheduled yet)"
        parts.append(f"{full_name(deployment)} runs next at {when}")
    return Text("; ".join(parts), style="dim")
