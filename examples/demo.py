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
Running it again changes nothing but adding runs: the pool is made only if missing, and
deploying replaces each deployment by name, keeping its id. The server's, the worker's
and the in-process examples' output go to ``$CONVEYOR_HOME/demo/*.log``.

A busy port is an error rather than a reason to move to another: the URL stays the one
the docs and your bookmarks name, and CONVEYOR_API_URL set for 4200 keeps pointing at
this server. The message says whether a Conveyor server is what holds the port.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from demo_support import (
    CLI,
    Child,
    DemoError,
    Stopped,
    Stopper,
    cli,
    command_name,
    console,
    conveyor_answers,
    full_name,
    is_final,
    next_runs_line,
    port_is_free,
    recent_runs,
    relative,
    runs_table,
    upcoming,
)
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from conveyor.client.api import ApiError, ConveyorClient
from conveyor.exceptions import ConveyorError
from conveyor.schemas.api import FlowRunRead
from conveyor.schemas.deployments import DeploymentFilter, DeploymentRead, DeploymentUpdate
from conveyor.schemas.states import StateType

START = time.monotonic()
EXAMPLES = Path(__file__).resolve().parent
CONFIG = EXAMPLES / "conveyor.yaml"
POOL = "demo"
WORKER = "demo-worker"
# Seconds between the scheduler's passes on the server the demo starts (default 30), so
# a deployment's scheduled runs show a few seconds after it is deployed.
SCHEDULER_INTERVAL = "5"


@dataclass
class Options:
    port: int
    home: Path
    once: bool
    schedule_seconds: float | None
    keep_schedule: bool
    timeout: float


@dataclass
class Demo:
    options: Options
    stopper: Stopper = field(default_factory=Stopper)
    since: datetime.datetime = field(
        default_factory=lambda: (
            datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
        )
    )
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    client: ConveyorClient | None = None
    deployments: list[DeploymentRead] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    """What the demo started, stopped in reverse order: server, worker, examples."""
    failures: list[str] = field(default_factory=list)

    @property
    def logs(self) -> Path:
        return self.options.home / "demo"

    @property
    def api(self) -> ConveyorClient:
        assert self.client is not None, "connect() first"
        return self.client

    def scheduled(self) -> list[DeploymentRead]:
        return [d for d in self.deployments if any(s.active for s in d.schedules)]

    # -- setting up ------------------------------------------------------------------------
    async def connect(self) -> None:
        """Use the server at CONVEYOR_API_URL, or start one on the port."""
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "CONVEYOR_HOME": str(self.options.home)}
        api_url = os.environ.get("CONVEYOR_API_URL", "").rstrip("/")
        if api_url:
            if not conveyor_answers(api_url):
                raise DemoError(
                    f"CONVEYOR_API_URL={api_url} does not answer; start that server, or unset "
                    "CONVEYOR_API_URL to let the demo start one."
                )
            self.url = api_url.removesuffix("/api")
            console.print(f"Using the Conveyor server at {self.url} (CONVEYOR_API_URL).")
        else:
            self.url = f"http://127.0.0.1:{self.options.port}"
            api_url = f"{self.url}/api"
            await self.start_server()
            console.print(f"Server on [bold]{self.url}[/bold], recording into {self.options.home}.")
        self.env["CONVEYOR_API_URL"] = api_url
        self.client = ConveyorClient(api_url)

    async def start_server(self) -> None:
        port = self.options.port
        if not port_is_free(port):
            if conveyor_answers(f"{self.url}/api"):
                raise DemoError(
                    f"A Conveyor server already listens on {self.url}; stop it, or use it with "
                    f"`CONVEYOR_API_URL={self.url}/api make run`."
                )
            raise DemoError(
                f"Port {port} is taken by another program; free it, or choose another port "
                f"with `make run PORT={port + 1}` (examples/demo.py --port {port + 1})."
            )
        env = {k: v for k, v in self.env.items() if k != "CONVEYOR_API_URL"}
        env.setdefault("CONVEYOR_SERVER_SERVICES_SCHEDULER_INTERVAL_SECONDS", SCHEDULER_INTERVAL)
        argv = [*CLI, "server", "start", "--port", str(port), "--log-level", "warning"]
        console.print(f"[dim]$ conveyor server start --port {port}[/dim]")
        server = Child.start("server", argv, env, self.logs / "server.log")
        self.children.append(server)
        deadline = time.monotonic() + 60
        while not await asyncio.to_thread(conveyor_answers, f"{self.url}/api"):
            self.stopper.check()
            if not server.running:
                raise DemoError(f"The server did not start ({server.tail()}); see {server.log}.")
            if time.monotonic() > deadline:
                raise DemoError(f"The server did not answer within 60 s; see {server.log}.")
            await asyncio.sleep(0.2)

    def config_file(self) -> Path:
        """``examples/conveyor.yaml``, or with ``--schedule-seconds`` a copy whose schedules
        run that often (for tests that cannot wait a minute), its source still here."""
        if self.options.schedule_seconds is None:
            return CONFIG
        data = yaml.safe_load(CONFIG.read_text())
        for spec in data["deployments"]:
            spec.setdefault("source", str(EXAMPLES))
            if spec.get("schedules"):
                spec["schedules"] = [{"interval": self.options.schedule_seconds}]
        copy = self.logs / "conveyor.yaml"
        copy.write_text(yaml.safe_dump(data, sort_keys=False))
        return copy

    async def deploy(self) -> None:
        """The pool if it is missing, then every deployment of the file (replaced by name:
        a deployment keeps its id, runs and history)."""
        try:
            await self.api.read_work_pool(POOL)
        except ApiError as exc:
            if exc.status != 404:
                raise
            await cli("work-pool", "create", POOL, env=self.env)
        self.stopper.check()
        config = self.config_file()
        shown = f"conveyor deploy --all --file {relative(config)}"
        await cli("deploy", "--all", "--file", str(config), env=self.env, show=shown)
        # The file's deployments, as deployed (a deployment is its flow's name + its own).
        declared = {
            (d["name"], d["entrypoint"]) for d in yaml.safe_load(config.read_text())["deployments"]
        }
        in_pool = await self.api.filter_deployments(
            DeploymentFilter(work_pool_name=[POOL], limit=200)
        )
        self.deployments = [d for d in in_pool if (d.name, d.entrypoint) in declared]
        if len(self.deployments) != len(declared):
            raise DemoError(
                f"Deployed {len(self.deployments)} of the {len(declared)} deployments of {CONFIG} "
                f"to the pool {POOL!r}; give each a `work_pool: {{name: {POOL}}}`."
            )
        self.stopper.check()

    def start_worker(self) -> None:
        argv = [*CLI, "worker", "start", "--pool", POOL, "--name", WORKER]
        console.print(f"[dim]$ conveyor worker start --pool {POOL} --name {WORKER}[/dim]")
        worker = Child.start("worker", argv, self.env, self.logs / "worker.log")
        self.children.append(worker)
        self.stopper.worker = worker

    async def trigger(self, deployment: DeploymentRead) -> uuid.UUID:
        """``conveyor deployment run``: a run due now; its id, as the command prints it."""
        output = await cli("deployment", "run", full_name(deployment), env=self.env)
        found = re.search(r"\(([0-9a-f]{8}-[0-9a-f-]{27})\)", output)
        if found is None:
            raise DemoError(f"`conveyor deployment run` did not name the run it made: {output}")
        return uuid.UUID(found[1])

    def check_children(self) -> None:
        """DemoError if the server or the worker has stopped on its own."""
        for child in self.children:
            if child.name != "examples" and not child.running:
                raise DemoError(
                    f"The {child.name} stopped ({child.tail()}); see {child.log} for why."
                )

    # -- the first round -------------------------------------------------------------------
    async def first_round(self) -> None:
        """Run each deployment once and the in-process examples; show them until all end
        (with --once, until a scheduled run has ended too)."""
        triggered = list(await asyncio.gather(*map(self.trigger, self.deployments)))
        console.print("[dim]$ python examples/run_all.py   # the in-process examples[/dim]")
        argv = [sys.executable, str(EXAMPLES / "run_all.py")]
        examples = Child.start("examples", argv, self.env, self.logs / "examples.log")
        self.children.append(examples)
        names = {d.id: full_name(d) for d in self.deployments}
        deadline = time.monotonic() + self.options.timeout
        with Live(console=console, auto_refresh=False) as live:
            while True:
                self.check_children()
                runs = await recent_runs(self.api, self.since)
                soonest = await self.soonest()
                by_id = {r.id: r for r in runs}
                ours = [by_id[i] for i in triggered if i in by_id]
                in_process = [r for r in runs if r.deployment_id is None]
                by_schedule = [r for r in runs if r.auto_scheduled]
                waiting = [r.name for r in ours + in_process if not is_final(r)]
                waiting += ["a run just made"] if len(ours) < len(triggered) else []
                waiting += ["run_all.py"] if examples.running else []
                if self.options.once and not all(soonest.values()):
                    waiting.append("the scheduler's next runs")
                if self.options.once and not any(map(is_final, by_schedule)):
                    waiting.append("a scheduled run")
                title = "The demo's runs" + (" (live)" if waiting else "")
                table = runs_table(runs, names, title)
                live.update(Group(table, next_runs_line(self.scheduled(), soonest)), refresh=True)
                if not waiting or self.stopper.event.is_set():
                    break
                if time.monotonic() > deadline:
                    self.failures.append(
                        f"Still waiting after {self.options.timeout:.0f} s for "
                        f"{', '.join(waiting)}; see the logs in {self.logs}."
                    )
                    break
                await self.stopper.sleep(0.5)
        if not console.is_terminal:
            console.line()  # a Live display that cannot redraw leaves its last line open
        for run in ours + in_process + by_schedule:
            if is_final(run) and run.state_type is not StateType.COMPLETED:
                self.failures.append(
                    f"Flow run {run.name!r} ({run.flow_name}) ended {run.state_name}; "
                    f"see `conveyor flow-run logs {run.id}`."
                )
        if not examples.running and examples.proc.returncode != 0:
            self.failures.append(
                f"The in-process examples failed ({examples.tail(1)}); see {examples.log}."
            )

    async def soonest(self) -> dict[uuid.UUID, FlowRunRead | None]:
        """Each scheduled deployment's next run, if the scheduler has made it."""
        found: dict[uuid.UUID, FlowRunRead | None] = {}
        for deployment in self.scheduled():
            found[deployment.id] = next(iter(await upcoming(self.api, deployment)), None)
        return found

    # -- then ------------------------------------------------------------------------------
    def print_next_steps(self) -> None:
        conveyor = command_name()
        names = [full_name(d) for d in self.deployments]
        example = "etl/demo -p days=10" if "etl/demo" in names else names[0]
        console.print()
        console.print(f"[bold]Open the web UI: {self.url}/[/bold]")
        console.print(f"Conveyor is running at {self.url}  (API docs: {self.url}/docs)")
        console.print("Next, in another terminal:")
        console.print(f"  export CONVEYOR_API_URL={self.env['CONVEYOR_API_URL']}")
        if self.options.home != default_home():
            console.print(f"  export CONVEYOR_HOME={self.options.home}")
        for line in (
            f"{conveyor} flow-run ls",
            f"{conveyor} deployment ls",
            f"{conveyor} flow-run logs ID          # an ID from flow-run ls",
            f"{conveyor} deployment run {example} --watch",
            f"python {relative(EXAMPLES / 'hello.py')}   # runs you start yourself show too",
        ):
            console.print(f"  {escape(line)}")
        console.print(f"The server's, the worker's and the runs' output: {self.logs}")

    async def watch(self) -> None:
        """The latest runs, live, until Ctrl-C."""
        names = {d.id: full_name(d) for d in self.deployments}
        hint = Text("Ctrl-C stops the worker and the server.", style="bold")
        with Live(console=console, auto_refresh=False, transient=True) as live:
            while not self.stopper.event.is_set():
                self.check_children()
                runs = (await recent_runs(self.api, self.since))[::-1][:12]
                table = runs_table(runs, names, "Latest runs, newest first (live)")
                soonest = next_runs_line(self.scheduled(), await self.soonest())
                live.update(Group(table, soonest, hint), refresh=True)
                await self.stopper.sleep(1.0)

    async def shut_down(self) -> None:
        """Pause the schedules, then stop what the demo started, last started first: the
        in-process examples, the worker (it finishes its runs in progress unless told
        twice), the server."""
        if self.client is not None:
            if not self.options.keep_schedule:
                for deployment in self.scheduled():
                    try:
                        await self.client.update_deployment(
                            deployment.id, DeploymentUpdate(paused=True)
                        )
                    except ConveyorError:
                        break  # the server is gone: nothing to pause
                    console.print(
                        f"Paused {full_name(deployment)} so its runs do not pile up while no "
                        "worker runs; the next `make run` resumes it."
                    )
            await self.client.aclose()
        for child in reversed(self.children):
            if not child.running:
                continue
            if child.name == "worker":
                console.print(
                    "Stopping the worker: it ends its runs in progress (Ctrl-C kills them)."
                )
                await child.stop(signal.SIGTERM, 60, second=signal.SIGTERM)
            elif child.name == "examples":
                await child.stop(signal.SIGINT, 10, second=signal.SIGTERM)
            else:
                console.print(f"Stopping the {child.name}.")
                await child.stop(signal.SIGTERM, 15)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, self.stopper)
        self.logs.mkdir(parents=True, exist_ok=True)
        console.print(
            "[bold]Conveyor demo[/bold]: a server, a process worker and the deployments of "
            f"{relative(CONFIG)}."
        )
        try:
            await self.connect()
            await self.deploy()
            self.start_worker()
            await self.first_round()
            for failure in self.failures:
                console.print(f"[red]{escape(failure)}[/red]")
            if not self.failures and not self.stopper.event.is_set():
                took = time.monotonic() - START
                console.print(f"[green]Every run completed[/green], {took:.0f} s after the start.")
            if not self.options.once and not self.stopper.event.is_set():
                self.print_next_steps()
                await self.watch()
        except Stopped:
            pass
        except (DemoError, ConveyorError) as exc:
            self.failures.append(str(exc))
            console.print(f"[red]Error:[/red] {escape(str(exc))}")
        finally:
            await self.shut_down()
        if self.stopper.event.is_set() and not self.options.once:
            return 0  # stopped as asked
        return 1 if self.failures or self.stopper.event.is_set() else 0


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
        return asyncio.run(Demo(options).run())
    except KeyboardInterrupt:  # before the signal handlers were in place
        return 130


if __name__ == "__main__":
    sys.exit(main())
