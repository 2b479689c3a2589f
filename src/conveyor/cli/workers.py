"""``conveyor worker start``: a process worker that claims and runs a pool's runs.

Talks to ``CONVEYOR_API_URL`` when it is set, otherwise to the local database (embedded;
the runs' processes then record into that same database).
"""

from __future__ import annotations

from typing import Annotated

import typer

worker_app = typer.Typer(
    help="Run a worker that launches a work pool's runs.", no_args_is_help=True
)

GRACE_ENV_VAR = "CONVEYOR_WORKER_CANCEL_GRACE_SECONDS"


@worker_app.command("start")
def start(
    pool: Annotated[str, typer.Option("--pool", "-p", help="The work pool to take runs from.")],
    queue: Annotated[
        list[str] | None,
        typer.Option("--queue", "-q", help="Only this queue of the pool (repeatable)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most this many runs at once.")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="The worker's name; default host-pid.")
    ] = None,
    prefetch_seconds: Annotated[
        float,
        typer.Option(
            "--prefetch-seconds",
            min=0,
            max=3600,
            help="Launch runs this many seconds before they are due.",
        ),
    ] = 0.0,
    cancel_grace_seconds: Annotated[
        float,
        typer.Option(
            "--cancel-grace-seconds",
            min=0,
            envvar=GRACE_ENV_VAR,
            help="After SIGTERM, how long a cancelled run's process has before SIGKILL.",
        ),
    ] = 30.0,
) -> None:
    """Claim the pool's due runs and run each in a subprocess. Ctrl+C (or SIGTERM) stops
    claiming and waits for the runs in progress; a second one kills them."""
    import asyncio
    import os
    import signal
    import socket

    from rich.console import Console

    from conveyor.cli.main import fail
    from conveyor.client.embedded import connect
    from conveyor.settings import Settings
    from conveyor.workers.base import Worker, WorkerOptions

    settings = Settings.from_env()
    options = WorkerOptions(
        pool=pool,
        name=name or f"{socket.gethostname()}-{os.getpid()}",
        queues=queue or None,
        limit=limit,
        prefetch_seconds=prefetch_seconds,
        cancel_grace_seconds=cancel_grace_seconds,
        api_url=settings.api_url,
    )
    console = Console(stderr=True, highlight=False)

    async def run() -> str:
        client = await connect(settings)
        worker = Worker(client, options)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.request_stop)
        try:
            return await worker.work()
        finally:
            await client.aclose()
            for signum in (signal.SIGTERM, signal.SIGINT):
                # Stopped already: a late signal must not kill the exit that follows.
                loop.remove_signal_handler(signum)
                signal.signal(signum, signal.SIG_IGN)

    _configure_logging(settings.logging_level)
    where = settings.api_url or "the local database"
    console.print(f"Worker [bold]{options.name}[/bold] on pool {pool!r} ({where}); Ctrl+C stops.")
    reason = asyncio.run(run())
    if reason != "asked to stop":
        fail(f"Worker {options.name} stopped: {reason}")
    console.print(f"Worker {options.name} stopped: {reason}.")


def _configure_logging(level: str) -> None:
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("conveyor.workers")
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
