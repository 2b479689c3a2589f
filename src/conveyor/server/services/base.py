"""The loop every background service runs: one bounded pass, then a pause, until stopped.

A service is a ``LoopService`` with a ``name``, an ``interval`` and ``run_once(now)``: one
pass over at most ``batch_size`` things, in short transactions, returning how many it
changed. The loop calls it every ``interval`` seconds on the server's event loop; a pass
that changed a full batch is followed at once by another, so a backlog is worked off
batch by batch without any one transaction growing with it. Time comes from ``clock``,
so tests drive a service by calling ``run_once`` with the time they want, without sleeping.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable
from typing import ClassVar

from conveyor.server.database.engine import Database

logger = logging.getLogger("conveyor.server.services")

Clock = Callable[[], datetime.datetime]

# A pass is one or two short transactions; stopping waits this long for it to end before
# cancelling it, so shutting down never abandons a transaction half-way without need.
STOP_GRACE_SECONDS = 5.0


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class LoopService(abc.ABC):
    """One background service. Subclasses set ``name`` and ``interval`` and implement
    ``run_once``; ``start``/``stop`` run it as a task on the running event loop."""

    name: ClassVar[str]
    interval: float
    batch_size: int = 100

    def __init__(
        self,
        database: Database,
        *,
        interval: float | None = None,
        batch_size: int | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.database = database
        if interval is not None:
            self.interval = interval
        if batch_size is not None:
            self.batch_size = batch_size
        self.clock = clock
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @abc.abstractmethod
    async def run_once(self, now: datetime.datetime) -> int:
        """One bounded pass at time ``now``; how many things it changed."""

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Run the loop as a task of the running event loop (a no-op if it runs)."""
        if self.running:
            return
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self._loop(), name=f"conveyor-service-{self.name}"
        )

    async def stop(self) -> None:
        """Stop at once if idle; a pass under way may finish, within a grace period."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        done, _ = await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        logger.debug("Service %s started (every %ss).", self.name, self.interval)
        while not self._stopping.is_set():
            try:
                changed = await self.run_once(self.clock())
            except Exception:
                # One bad pass (a database hiccup, a bad row) must not end the service:
                # say which service failed, and try again next interval.
                logger.exception("Service %s failed a pass; it runs again later.", self.name)
                changed = 0
            if changed:
                logger.info("Service %s changed %d record(s).", self.name, changed)
            delay = 0.0 if changed >= self.batch_size else self.interval
            with contextlib.suppress(asyncio.TimeoutError):  # not TimeoutError before 3.11
                await asyncio.wait_for(self._stopping.wait(), delay)
        logger.debug("Service %s stopped.", self.name)
