"""``make run``: a Conveyor server, a process worker and the example deployments, live.

Run it with ``python examples/demo.py`` (``make run`` does). It

1. starts ``conveyor server start`` on http://127.0.0.1:4200 over your CONVEYOR_HOME, so
   runs you make with ``python my_flow.py`` show there too (with CONVEYOR_API_URL set to a
   server that answers, it uses that server instead and starts none);
2. creates the process work pool ``demo`` if it is missing and deploys
   ``examples/conveyor.yaml`` with ``conveyor deploy`` (one deployment runs every minute);
3. starts ``conveyor worker start --pool demo``;
4. runs each deployment once, and the in-process examples (``run_all.py``) against the
   server, with a live table until they finish;
5. prints the URL and the next commands, then shows runs as they happen until Ctrl-C,
   which pauses the every-minute deployment (so no runs pile up while no worker runs; the
   next ``make run`` resumes it) and stops the worker, then the server.

``--once`` stops after the first round instead: exit status 0 only if every run
completed, the scheduler made the scheduled deployment's next runs and one of them ran.
The server's, the worker's and the in-process examples' output go to
``$CONVEYOR_HOME/demo/*.log``.

A busy port is an error rather than a reason to move: the printed URL, bookmarks and
CONVEYOR_API_URL stay right, and a Conveyor server already there is named as such.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from conveyor.client.api import ConveyorClient
from conveyor.exceptions import ConveyorError
from conveyor.schemas.api import FlowRunFilter, FlowRunRead, FlowRunSort
from conveyor.schemas.deployments import DeploymentFilter, DeploymentRead, DeploymentUpdate
from conveyor.schemas.states import TERMINAL_STATE_TYPES, StateType

START = time.monotonic()
EXAMPLES = Path(__file__).resolve().parent
CONFIG = EXAMPLES / "conveyor.yaml"
POOL = "demo"
WORKER = "demo-worker"
CLI = (sys.executable, "-m", "conveyor")
SCHEDULER_INTERVAL = "5"  # seconds: scheduled runs show soon after deploying
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


# -- child processes ----------------------------------------------------------------------
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
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " / ".join(line.strip() for line in text[-lines:])

    async def wait(self, timeout: float) -> bool:
        """Whether the process exited within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.running and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return not self.running

    async def stop(self, grace: float) -> None:
        """SIGTERM, then after ``grace`` seconds SIGKILL to its whole process group."""
        self.signal(signal.SIGTERM)
        if not await self.wait(grace):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await self.wait(5)


@dataclass
class Stopper:
    """Counts SIGINT/SIGTERM/SIGHUP: the first asks the demo to stop; a second, while the
    worker waits for its runs, kills them (as it does for the worker itself)."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    count: int = 0
    worker: Child | None = None

    def __call__(self) -> None:
        self.count += 1
        self.event.set()
        if self.count > 1 and self.worker is not None:
            self.worker.signal(signal.SIGTERM)

    async def sleep(self, seconds: float) -> None:
        """Sleep, or return at once when asked to stop."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.event.wait(), seconds)


async def cli(*args: str, env: dict[str, str], show: str | None = None) -> str:
    """Run ``conveyor ARGS`` and return its output; DemoError with its error line if it
    fails. ``show`` is the command as printed (default ``conveyor ARGS``)."""
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


# -- the server ---------------------------------------------------------------------------
def conveyor_answers(api_url: str) -> bool:
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


async def start_server(port: int, env: dict[str, str], logs: Path) -> Child:
    url = f"http://127.0.0.1:{port}"
    if not port_is_free(port):
        if conveyor_answers(f"{url}/api"):
            raise DemoError(
                f"A Conveyor server already listens on {url}; stop it, or use it with "
                f"`CONVEYOR_API_URL={url}/api make run`."
            )
        raise DemoError(
            f"Port {port} is taken by another program; free it, or choose another port with "
            f"`make run PORT={port + 1}` (examples/demo.py --port {port + 1})."
        )
    server_env = {k: v for k, v in env.items() if k != "CONVEYOR_API_URL"}
    server_env.setdefault("CONVEYOR_SERVER_SERVICES_SCHEDULER_INTERVAL_SECONDS", SCHEDULER_INTERVAL)
    argv = [*CLI, "server", "start", "--port", str(port), "--log-level", "warning"]
    console.print(f"[dim]$ conveyor server start --port {port}[/dim]")
    server = Child.start("server", argv, server_env, logs / "server.log")
    deadline = time.monotonic() + 60
    while not await asyncio.to_thread(conveyor_answers, f"{url}/api"):
        if not server.running:
            raise DemoError(f"The server did not start ({server.tail()}); see {server.log}.")
        if time.monotonic() > deadline:
            await server.stop(5)
            raise DemoError(f"The server did not answer within 60 s; see {server.log}.")
        await asyncio.sleep(0.2)
    return server


# -- deployments --------------------------------------------------------------------------
def config_file(schedule_seconds: float | None, workdir: Path) -> Path:
    """``examples/conveyor.yaml``, or a copy whose schedules run every ``schedule_seconds``
    (for tests that cannot wait a minute), its source still this directory."""
    if schedule_seconds is None:
        return CONFIG
    data = yaml.safe_load(CONFIG.read_text())
    for spec in data["deployments"]:
        spec.setdefault("source", str(EXAMPLES))
        if spec.get("schedules"):
            spec["schedules"] = [{"interval": schedule_seconds}]
    copy = workdir / "conveyor.yaml"
    copy.write_text(yaml.safe_dump(data, sort_keys=False))
    return copy


async def deploy(client: ConveyorClient, env: dict[str, str], config: Path) -> list[DeploymentRead]:
    """The pool (made if missing) and the file's deployments, deployed again each time:
    deploying by name replaces a deployment and keeps its id, so this is idempotent."""
    pools = await client.filter_work_pools()
    if not any(pool.name == POOL for pool in pools):
        await cli("work-pool", "create", POOL, env=env)
    shown = f"conveyor deploy --all --file {relative(config)}"
    await cli("deploy", "--all", "--file", str(config), env=env, show=shown)
    return await client.filter_deployments(DeploymentFilter(work_pool_name=[POOL], limit=200))


def relative(path: Path) -> Path:
    """``path`` from the current directory when it is under it (for commands to copy)."""
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def full_name(deployment: DeploymentRead) -> str:
    return f"{deployment.flow_name}/{deployment.name}"


def scheduled(deployments: Iterable[DeploymentRead]) -> list[DeploymentRead]:
    return [d for d in deployments if any(s.active for s in d.schedules)]


async def trigger(deployment: DeploymentRead, env: dict[str, str]) -> uuid.UUID:
    """``conveyor deployment run``: a run due now; its id, read from what the command says."""
    output = await cli("deployment", "run", full_name(deployment), env=env)
    found = re.search(r"\(([0-9a-f]{8}-[0-9a-f-]{27})\)", output)
    if found is None:
        raise DemoError(f"`conveyor deployment run` did not name the run it made: {output!r}.")
    return uuid.UUID(found[1])


async def upcoming(client: ConveyorClient, deployment: DeploymentRead) -> list[FlowRunRead]:
    """The deployment's Scheduled runs not yet due, soonest first."""
    now = datetime.datetime.now(datetime.timezone.utc)
    runs = await client.filter_flow_runs(
        FlowRunFilter(
            deployment_id=[deployment.id],
            state_type=[StateType.SCHEDULED],
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=200,
        )
    )
    due = [r for r in runs if r.expected_start_time is not None and r.expected_start_time > now]
    return sorted(due, key=lambda r: r.expected_start_time or now)


# -- showing runs -------------------------------------------------------------------------
def is_final(run: FlowRunRead) -> bool:
    return run.state_type in TERMINAL_STATE_TYPES


async def recent_runs(client: ConveyorClient, since: datetime.datetime) -> list[FlowRunRead]:
    """Top-level runs made since ``since`` and due by now, in the order they were due.

    Subflow runs are left out (``conveyor flow-run ls`` lists them), and so are scheduled
    runs still to come (``upcoming``)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    runs = await client.filter_flow_runs(FlowRunFilter(created_after=since, limit=200))
    shown = [
        r
        for r in runs
        if r.parent_flow_run_id is None
        and not (
            r.state_type is StateType.SCHEDULED
            and r.expected_start_time is not None
            and r.expected_start_time > now
        )
    ]
    return sorted(shown, key=lambda r: r.expected_start_time or r.created)


def _duration(run: FlowRunRead) -> str:
    if run.start_time is None:
        return "-"
    end = run.end_time or datetime.datetime.now(datetime.timezone.utc)
    return f"{(end - run.start_time).total_seconds():.1f}s"


def _clock(value: datetime.datetime | None) -> str:
    return value.astimezone().strftime("%H:%M:%S") if value is not None else "-"


def runs_table(runs: Sequence[FlowRunRead], names: dict[uuid.UUID, str], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("Flow run", "Flow", "Deployment", "Made by", "State", "Started", "Duration"):
        table.add_column(column, no_wrap=column in ("Flow run", "State", "Duration"))
    for run in runs:
        colour = COLOURS.get(run.state_type, "white") if run.state_type else "white"
        state = run.state_name or (run.state_type.value if run.state_type else "-")
        deployment = names.get(run.deployment_id, "-") if run.deployment_id else "-"
        if run.deployment_id is None:
            made_by = "python (in-process)"
        else:
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


def next_line(
    deployments: Sequence[DeploymentRead], soonest: dict[uuid.UUID, FlowRunRead | None]
) -> Text:
    parts = []
    for deployment in deployments:
        run = soonest.get(deployment.id)
        when = _clock(run.expected_start_time) if run is not None else "not scheduled yet"
        parts.append(f"{full_name(deployment)} next runs at {when}")
    return Text("; ".join(parts), style="dim")


# -- the demo -----------------------------------------------------------------------------
@dataclass
class Options:
    port: int
    home: Path
    once: bool
    schedule_seconds: float | None
    keep_schedule: bool
    timeout: float


@dataclass
class Round:
    """What the first round made and how it ended."""

    triggered: list[uuid.UUID]
    examples: Child
    failures: list[str] = field(default_factory=list)


def command_name() -> str:
    """How the user types the ``conveyor`` command that belongs to this Python."""
    script = Path(sys.executable).with_name("conveyor")
    on_path = shutil.which("conveyor")
    if on_path is not None and Path(on_path).resolve() == script.resolve():
        return "conveyor"
    if script.exists():
        return str(relative(script))
    return "python -m conveyor"


def print_next_steps(url: str, env: dict[str, str], names: Sequence[str], logs: Path) -> None:
    conveyor = command_name()
    console.print()
    console.print(f"[bold]Conveyor is running at {url}[/bold]  (API docs: {url}/docs)")
    console.print("Next, in another terminal:")
    console.print(f"  export CONVEYOR_API_URL={env['CONVEYOR_API_URL']}")
    if env["CONVEYOR_HOME"] != str(default_home()):
        console.print(f"  export CONVEYOR_HOME={env['CONVEYOR_HOME']}")
    for line in (
        f"{conveyor} flow-run ls",
        f"{conveyor} deployment ls",
        f"{conveyor} flow-run logs ID          # ID from flow-run ls",
        f"{conveyor} deployment run {names[0] if names else 'FLOW/NAME'} --watch",
        f"python {relative(EXAMPLES / 'hello.py')}   # runs you start yourself show too",
    ):
        console.print(f"  {escape(line)}")
    console.print(f"Logs of the server, the worker and the runs: {logs}")


async def first_round(
    client: ConveyorClient,
    options: Options,
    env: dict[str, str],
    deployments: Sequence[DeploymentRead],
    logs: Path,
    stopper: Stopper,
    since: datetime.datetime,
) -> Round:
    """Run each deployment once and the in-process examples; show them until all end."""
    triggered = list(await asyncio.gather(*(trigger(d, env) for d in deployments)))
    console.print(f"[dim]$ python {EXAMPLES.name}/run_all.py   # the in-process examples[/dim]")
    examples = Child.start(
        "examples", [sys.executable, str(EXAMPLES / "run_all.py")], env, logs / "examples.log"
    )
    result = Round(triggered, examples)
    names = {d.id: full_name(d) for d in deployments}
    on_schedule = scheduled(deployments)
    deadline = time.monotonic() + options.timeout
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            runs = await recent_runs(client, since)
            by_id = {r.id: r for r in runs}
            soonest = {d.id: next(iter(await upcoming(client, d)), None) for d in on_schedule}
            ours = [by_id[i] for i in triggered if i in by_id]
            in_process = [r for r in runs if r.deployment_id is None]
            by_schedule = [r for r in runs if r.auto_scheduled]
            done = (
                len(ours) == len(triggered)
                and all(is_final(r) for r in ours)
                and not examples.running
                and all(is_final(r) for r in in_process)
            )
            if options.once:
                # The scheduler made the next runs, and one of them ran.
                done = done and all(soonest.values()) and any(map(is_final, by_schedule))
            title = "The demo's runs" + ("" if done else " (live)")
            live.update(
                Group(runs_table(runs, names, title), next_line(on_schedule, soonest)),
                refresh=True,
            )
            if done or stopper.event.is_set():
                break
            if time.monotonic() > deadline:
                waiting = [r.name for r in ours + in_process if not is_final(r)]
                if examples.running:
                    waiting.append("run_all.py")
                if options.once and not all(soonest.values()):
                    waiting.append("the scheduler's next runs")
                elif options.once and not any(map(is_final, by_schedule)):
                    waiting.append("a scheduled run")
                result.failures.append(
                    f"Still waiting after {options.timeout:.0f} s for {', '.join(waiting)}; "
                    f"see the logs in {logs}."
                )
                break
            await stopper.sleep(0.5)
    if not console.is_terminal:
        console.line()  # a Live display that cannot redraw leaves its last line open
    for run in ours + in_process + by_schedule:
        if is_final(run) and run.state_type is not StateType.COMPLETED:
            result.failures.append(
                f"Flow run {run.name!r} ({run.flow_name}) ended {run.state_name}; "
                f"see `conveyor flow-run logs {run.id}`."
            )
    if not examples.running and examples.proc.returncode != 0:
        result.failures.append(
            f"The in-process examples failed ({examples.tail(1)}); see {examples.log}."
        )
    return result


async def watch(
    client: ConveyorClient,
    deployments: Sequence[DeploymentRead],
    stopper: Stopper,
    since: datetime.datetime,
) -> None:
    """The latest runs, live, until Ctrl-C."""
    names = {d.id: full_name(d) for d in deployments}
    on_schedule = scheduled(deployments)
    hint = Text("Ctrl-C stops the worker and the server.", style="bold")
    with Live(console=console, auto_refresh=False, transient=True) as live:
        while not stopper.event.is_set():
            runs = (await recent_runs(client, since))[::-1][:12]
            soonest = {d.id: next(iter(await upcoming(client, d)), None) for d in on_schedule}
            live.update(
                Group(
                    runs_table(runs, names, "Latest runs, newest first (live)"),
                    next_line(on_schedule, soonest),
                    hint,
                ),
                refresh=True,
            )
            await stopper.sleep(1.0)


async def pause_schedules(client: ConveyorClient, deployments: Sequence[DeploymentRead]) -> None:
    for deployment in scheduled(deployments):
        await client.update_deployment(deployment.id, DeploymentUpdate(paused=True))
        console.print(
            f"Paused {full_name(deployment)} so its runs do not pile up while no worker runs; "
            "the next `make run` resumes it."
        )


async def demo(options: Options) -> int:
    stopper = Stopper()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stopper)
    since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
    logs = options.home / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CONVEYOR_HOME": str(options.home)}
    server: Child | None = None
    worker: Child | None = None
    client: ConveyorClient | None = None
    deployments: list[DeploymentRead] = []
    failures: list[str] = []
    try:
        api_url = os.environ.get("CONVEYOR_API_URL")
        if api_url:
            if not conveyor_answers(api_url.rstrip("/")):
                raise DemoError(
                    f"CONVEYOR_API_URL={api_url} does not answer; start that server, or unset "
                    "CONVEYOR_API_URL to let the demo start one."
                )
            url = api_url.rstrip("/").removesuffix("/api")
            console.print(f"Using the Conveyor server at {url} (CONVEYOR_API_URL).")
        else:
            url = f"http://127.0.0.1:{options.port}"
            server = await start_server(options.port, env, logs)
            api_url = f"{url}/api"
            console.print(f"Server on [bold]{url}[/bold], recording into {options.home}.")
        env["CONVEYOR_API_URL"] = api_url
        client = ConveyorClient(api_url)
        config = config_file(options.schedule_seconds, logs)
        deployments = await deploy(client, env, config)
        if not deployments:
            raise DemoError(f"{CONFIG} deploys nothing to the pool {POOL!r}; add a deployment.")
        worker_argv = [*CLI, "worker", "start", "--pool", POOL, "--name", WORKER]
        console.print(f"[dim]$ conveyor worker start --pool {POOL} --name {WORKER}[/dim]")
        worker = stopper.worker = Child.start("worker", worker_argv, env, logs / "worker.log")
        result = await first_round(client, options, env, deployments, logs, stopper, since)
        failures = result.failures
        if stopper.event.is_set():
            result.examples.signal(signal.SIGINT)
            await result.examples.wait(10)
        for failure in failures:
            console.print(f"[red]{escape(failure)}[/red]")
        if not failures and not stopper.event.is_set():
            took = time.monotonic() - START
            console.print(f"[green]Every run completed[/green], {took:.0f} s after the start.")
        if not options.once and not stopper.event.is_set():
            print_next_steps(url, env, [full_name(d) for d in deployments], logs)
            await watch(client, deployments, stopper, since)
    except DemoError as exc:
        failures.append(str(exc))
        console.print(f"[red]Error:[/red] {escape(str(exc))}")
    except ConveyorError as exc:
        failures.append(str(exc))
        console.print(f"[red]Error:[/red] {escape(str(exc))} (server log: {logs / 'server.log'})")
    finally:
        await shut_down(client, deployments, worker, server, options, stopper)
    return 1 if failures and (options.once or not stopper.event.is_set()) else 0


async def shut_down(
    client: ConveyorClient | None,
    deployments: Sequence[DeploymentRead],
    worker: Child | None,
    server: Child | None,
    options: Options,
    stopper: Stopper,
) -> None:
    """Pause the schedules, then stop the worker (it waits for its runs in progress), then
    the server: each step only for what this demo started."""
    if client is not None:
        if not options.keep_schedule:
            with contextlib.suppress(ConveyorError):
                await pause_schedules(client, deployments)
        await client.aclose()
    if worker is not None and worker.running:
        console.print("Stopping the worker: it finishes its runs in progress (Ctrl-C kills them).")
        stopper.worker = worker
        await worker.stop(grace=60)
    if server is not None and server.running:
        console.print("Stopping the server.")
        await server.stop(grace=15)


def default_home() -> Path:
    return Path(os.environ.get("CONVEYOR_HOME") or "~/.conveyor").expanduser().absolute()


def parse(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="examples/demo.py",
        description="Start a Conveyor server and worker, deploy the examples and run them.",
    )
    parser.add_argument("--port", type=int, default=4200, help="server port (default 4200)")
    parser.add_argument(
        "--home",
        type=Path,
        default=default_home(),
        help="CONVEYOR_HOME of the server and runs (default: $CONVEYOR_HOME or ~/.conveyor)",
    )
    parser.add_argument(
        "--once", action="store_true", help="stop after the first round; exit 1 unless all is well"
    )
    parser.add_argument(
        "--schedule-seconds",
        type=float,
        help="run the scheduled deployment this often instead of every minute",
    )
    parser.add_argument(
        "--keep-schedule",
        action="store_true",
        help="leave the scheduled deployment active on exit (default: pause it)",
    )
    parser.add_argument(
        "--timeout", type=float, default=300, help="give up on the first round after this long"
    )
    args = parser.parse_args(argv)
    return Options(
        port=args.port,
        home=args.home.expanduser().absolute(),
        once=args.once,
        schedule_seconds=args.schedule_seconds,
        keep_schedule=args.keep_schedule,
        timeout=args.timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    try:
        return asyncio.run(demo(options))
    except KeyboardInterrupt:  # before the signal handlers were in place
        return 130


if __name__ == "__main__":
    sys.exit(main())
