"""How the process worker starts each job: through its fork server when it can, as a
plain subprocess otherwise.

A job goes through the fork server when its command is the default one and the
variables that configure a Python interpreter at start-up (``PYTHON*`` except
``PYTHONPATH``, which the child applies; ``LANG`` and ``LC_*``, which set its locale) are
the worker's own: a forked child is that interpreter. The fork server starts with the
worker and again, on the next job, after it died; while it cannot start, jobs run as
subprocesses. No job is lost either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

from conveyor.workers.forked import ForkedProcess, ForkServer, ForkServerLost
from conveyor.workers.process import JobProcess, ProcessJob, RunningProcess

logger = logging.getLogger("conveyor.workers")

RETRY_SECONDS = 30.0
"""After the fork server failed to start, jobs run as subprocesses this long."""


class Launcher:
    def __init__(self, *, embedded: bool, fork_server: bool = True) -> None:
        self.embedded = embedded
        self.enabled = fork_server
        self._server: ForkServer | None = None
        self._starting: asyncio.Task[ForkServer | None] | None = None
        self._retry_at = 0.0

    def open(self) -> None:
        """Start the fork server in the background (the worker need not wait for it)."""
        if self.enabled and self._starting is None:
            self._starting = asyncio.create_task(self._start_server())

    async def ready(self) -> None:
        """Until the fork server started by ``open`` is up, or has failed to start."""
        starting = self._starting
        if starting is not None:
            await asyncio.shield(starting)

    async def start(self, job: ProcessJob) -> JobProcess:
        server = await self._server_for(job) if forkable(job) else None
        if server is not None:
            try:
                return await ForkedProcess.start(server, job)
            except ForkServerLost as exc:
                logger.warning(
                    "Flow run %s: %s; starting it as a subprocess.", job.flow_run_id, exc
                )
        return await RunningProcess.start(job)

    async def close(self) -> None:
        """Stop the fork server; the runs it started are the worker's to wait for."""
        self.enabled = False
        if self._starting is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting
        if self._server is not None:
            await self._server.close()

    async def _server_for(self, job: ProcessJob) -> ForkServer | None:
        if not self.enabled:
            return None
        if self._starting is not None:
            return await asyncio.shield(self._starting)
        if self._server is not None and self._server.alive:
            return self._server
        if self._server is not None:
            logger.warning("The fork server (pid %d) died; starting another.", self._server.pid)
            await self._server.close()
            self._server = None
            self._retry_at = 0.0
        if time.monotonic() < self._retry_at:
            return None
        self._starting = asyncio.create_task(self._start_server())
        return await asyncio.shield(self._starting)

    async def _start_server(self) -> ForkServer | None:
        try:
            self._server = await ForkServer.start(self.embedded)
            logger.debug("Fork server started (pid %d).", self._server.pid)
        except ForkServerLost as exc:
            self._server = None
            self._retry_at = time.monotonic() + RETRY_SECONDS
            logger.warning("%s; runs start as subprocesses for now.", exc.args[0].capitalize())
        finally:
            self._starting = None
        return self._server


def forkable(job: ProcessJob) -> bool:
    """Whether the fork server can run ``job``: the default command, and an interpreter
    configured as the worker's."""
    if job.execute_args is None:
        return False
    names = {name for name in (*job.env, *os.environ) if _read_at_start(name)}
    return all(job.env.get(name) == os.environ.get(name) for name in names)


def _read_at_start(name: str) -> bool:
    """Whether an interpreter reads this variable only when it starts (the locale too)."""
    if name == "PYTHONPATH":
        return False  # the child puts it on sys.path
    return name.startswith(("PYTHON", "LC_")) or name == "LANG"
