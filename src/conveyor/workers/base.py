"""The worker loop: heartbeat -> claim (long-poll) -> launch each run -> watch it -> report.

Read ``Worker.work`` top to bottom. Each claimed run gets a task that fetches its code,
renders its job, starts the process and watches it until it exits: every
``poll_seconds`` it looks for a request to cancel the run (the run Cancelling: the
process group is stopped, then the run is made Cancelled), and every
``heartbeat_seconds`` it says the run is alive. A process that exits without its run in
a final state is reported Crashed, with the tail of its stderr.

``work`` returns why it stopped; the first SIGTERM/SIGINT stops claiming and waits for
the runs in progress, a second one kills them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.client.api import ApiError, ConveyorClient, ServerUnreachable
from conveyor.deployments.errors import CodeSourceError
from conveyor.exceptions import JobVariablesError
from conveyor.schemas.states import TERMINAL_STATE_TYPES, Cancelled, Crashed, State, StateType
from conveyor.schemas.workers import ClaimedRun, WorkerClaim
from conveyor.workers.launcher import Launcher
from conveyor.workers.process import (
    JobProcess,
    ProcessJob,
    describe_exit,
    job_from_configuration,
)

logger = logging.getLogger("conveyor.workers")

MAX_CLAIM_BATCH = 10


@dataclass(frozen=True)
class WorkerOptions:
    pool: str
    name: str
    queues: list[str] | None = None
    limit: int | None = None
    """At most this many runs at once; None: no limit."""
    prefetch_seconds: float = 0.0
    cancel_grace_seconds: float = 30.0
    claim_wait_seconds: float = 10.0
    heartbeat_seconds: float = 10.0
    poll_seconds: float = 2.0
    api_url: str | None = None
    """Given to the runs' processes; None: they use the same local database."""
    fork_server: bool = True
    """Start runs with the default command through a fork server (``launcher``)."""


class Worker:
    def __init__(self, client: ConveyorClient, options: WorkerOptions) -> None:
        self.client = client
        self.options = options
        self.active: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.processes: dict[uuid.UUID, JobProcess] = {}
        self.launcher = Launcher(embedded=options.api_url is None, fork_server=options.fork_server)
        self.stop_requested = asyncio.Event()
        self.kill_requested = False

    # -- the loop ---------------------------------------------------------------------
    async def work(self) -> str:
        """Claim and run until stopped; returns the reason it stopped."""
        options = self.options
        self.launcher.open()
        await self._until_ready()
        logger.info("Worker %r is polling work pool %r.", options.name, options.pool)
        reason: str | None = None
        while reason is None:
            room = self._room()
            if room == 0:
                await self._wait_for_room()
                await self._heartbeat()
            else:
                claimed, reason = await self._claim(room)
                for run in claimed:
                    self._launch(run)
            if reason is None and self.stop_requested.is_set():
                reason = "asked to stop"
        await self._drain()
        await self.launcher.close()
        return reason

    def request_stop(self) -> None:
        """The first call stops claiming; the second kills the runs in progress."""
        if not self.stop_requested.is_set():
            logger.warning(
                "Stopping: no new runs; waiting for %d in progress (signal again to kill them).",
                len(self.active),
            )
            self.stop_requested.set()
            return
        self.kill_requested = True
        logger.warning("Killing %d run(s) in progress.", len(self.processes))
        for process in self.processes.values():
            process.signal_group(signal.SIGKILL)

    async def _until_ready(self) -> None:
        """Claim nothing before runs can be launched quickly: the fork server is up and
        what preparing a job imports is imported."""
        ready: asyncio.Future[Any] = asyncio.gather(
            self.launcher.ready(), asyncio.to_thread(_warm_up)
        )
        stop = asyncio.ensure_future(self.stop_requested.wait())
        await asyncio.wait([ready, stop], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()

    def _room(self) -> int:
        limit = self.options.limit
        if limit is None:
            return MAX_CLAIM_BATCH
        return min(max(limit - len(self.active), 0), MAX_CLAIM_BATCH)

    async def _claim(self, room: int) -> tuple[list[ClaimedRun], str | None]:
        options = self.options
        body = WorkerClaim(
            worker_name=options.name,
            queues=options.queues,
            limit=room,
            wait_seconds=options.claim_wait_seconds,
            prefetch_seconds=options.prefetch_seconds,
        )
        claim = asyncio.ensure_future(self.client.claim_runs(options.pool, body))
        stop = asyncio.ensure_future(self.stop_requested.wait())
        await asyncio.wait({claim, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not claim.done():
            # Dropping the request: the server sees the disconnect and claims nothing.
            claim.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await claim
            return [], None
        try:
            return claim.result().runs, None
        except ServerUnreachable as exc:
            logger.warning("%s Retrying in %.0fs.", exc, options.heartbeat_seconds)
            await self._sleep_unless_stopped(options.heartbeat_seconds)
            return [], None
        except ApiError as exc:
            if exc.status == 404:
                return [], f"cannot claim from work pool {options.pool!r}: {exc.detail}"
            logger.warning("Claiming failed: %s", exc)
            await self._sleep_unless_stopped(options.poll_seconds)
            return [], None

    async def _wait_for_room(self) -> None:
        stop = asyncio.ensure_future(self.stop_requested.wait())
        await asyncio.wait(
            {stop, *self.active.values()},
            timeout=self.options.heartbeat_seconds,
            return_when=asyncio.FIRST_COMPLETED,
        )
        stop.cancel()

    async def _heartbeat(self) -> None:
        with contextlib.suppress(ApiError, ServerUnreachable):
            await self.client.worker_heartbeat(self.options.pool, self.options.name)

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_requested.wait(), seconds)

    async def _drain(self) -> None:
        if self.active:
            logger.info("Waiting for %d run(s) in progress to end.", len(self.active))
            await asyncio.gather(*self.active.values(), return_exceptions=True)

    # -- one run ----------------------------------------------------------------------
    def _launch(self, claimed: ClaimedRun) -> None:
        run_id = claimed.flow_run.id
        task = asyncio.create_task(self._run(claimed), name=f"flow-run-{run_id}")
        self.active[run_id] = task
        task.add_done_callback(lambda _: self.active.pop(run_id, None))

    async def _run(self, claimed: ClaimedRun) -> None:
        run = claimed.flow_run
        logger.info("Launching flow run %s (%r).", run.id, run.name)
        scratch = Path(tempfile.mkdtemp(prefix="conveyor-run-"))
        try:
            try:
                job = await asyncio.to_thread(self._prepare, claimed, scratch)
                process = await self.launcher.start(job)
            except (CodeSourceError, JobVariablesError, OSError, ValueError) as exc:
                message = f"The worker could not launch the run: {exc}"
                await self._propose(run.id, Crashed(message=message))
                return
            self.processes[run.id] = process
            try:
                code, cancelled = await self._watch(run.id, process)
            finally:
                self.processes.pop(run.id, None)
            await self._report(run.id, process, code, cancelled)
        except Exception:
            logger.exception("Flow run %s: the worker failed watching it.", run.id)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _prepare(self, claimed: ClaimedRun, scratch: Path) -> ProcessJob:
        from conveyor.deployments.sources import fetch
        from conveyor.schemas.work_pools import (
            BaseJobTemplate,
            render_job_configuration,
            resolve_job_variables,
        )

        if claimed.entrypoint is None:
            raise ValueError("the run has no deployment entrypoint to load its flow from")
        template = BaseJobTemplate.model_validate(claimed.base_job_template)
        variables = resolve_job_variables(template, claimed.job_variables)
        configuration = render_job_configuration(template, variables)
        source = claimed.source
        code_dir = fetch(source, scratch / "code") if source is not None else Path.cwd()
        return job_from_configuration(
            claimed.flow_run.id,
            configuration,
            entrypoint=claimed.entrypoint,
            code_dir=code_dir,
            scratch_dir=scratch,
            api_url=self.options.api_url,
            flow_run=claimed.flow_run.model_dump(mode="json"),
        )

    async def _watch(self, run_id: uuid.UUID, process: JobProcess) -> tuple[int, bool]:
        """Wait for the process to exit, stopping it if its run is cancelled; returns its
        exit code and whether the worker stopped it for a cancellation."""
        options = self.options
        loop = asyncio.get_running_loop()
        exited = asyncio.ensure_future(process.wait())
        stopping: asyncio.Task[None] | None = None
        next_heartbeat = loop.time()
        while True:
            done, _ = await asyncio.wait({exited}, timeout=options.poll_seconds)
            if done:
                return exited.result(), stopping is not None
            if loop.time() >= next_heartbeat:
                next_heartbeat = loop.time() + options.heartbeat_seconds
                with contextlib.suppress(ApiError, ServerUnreachable):
                    await self.client.flow_run_heartbeat(run_id)
            if stopping is None and await self._state_type(run_id) is StateType.CANCELLING:
                logger.warning("Flow run %s is being cancelled: stopping its process.", run_id)
                stopping = asyncio.create_task(process.stop(options.cancel_grace_seconds))

    async def _state_type(self, run_id: uuid.UUID) -> StateType | None:
        try:
            return (await self.client.read_flow_run(run_id)).state_type
        except (ApiError, ServerUnreachable):
            return None

    async def _report(
        self, run_id: uuid.UUID, process: JobProcess, code: int, cancelled: bool
    ) -> None:
        try:
            read = await self.client.read_flow_run(run_id)
            state_type, state_name = read.state_type, read.state_name
        except (ApiError, ServerUnreachable):
            state_type = state_name = None
        how = describe_exit(code)
        if state_type in TERMINAL_STATE_TYPES:
            logger.info("Flow run %s ended %s; its process %s.", run_id, state_type.value, how)
            return
        if state_type is StateType.PAUSED and state_name == "Suspended":
            # suspend_flow_run: the process exits on purpose; a resume schedules the run.
            logger.info("Flow run %s is suspended; its process %s.", run_id, how)
            return
        if cancelled or state_type is StateType.CANCELLING:
            message = f"Cancelled: the worker stopped its process, which {how}."
            await self._propose(run_id, Cancelled(message=message))
            return
        why = " (the worker was told to kill it)" if self.kill_requested else ""
        message = f"The flow run's process {how}{why} without reporting a final state."
        tail = process.tail()
        if tail:
            message += f" The end of its stderr:\n{tail}"
        await self._propose(run_id, Crashed(message=message))

    async def _propose(self, run_id: uuid.UUID, state: State) -> None:
        state.state_details.transition_id = uuid.uuid4()
        try:
            result = await self.client.set_flow_run_state(run_id, state)
        except (ApiError, ServerUnreachable) as exc:
            logger.error("Flow run %s: could not record %s: %s", run_id, state.name, exc)
            return
        logger.log(
            logging.ERROR if state.type is StateType.CRASHED else logging.INFO,
            "Flow run %s: %s (%s). %s",
            run_id,
            state.name,
            result.status.value,
            state.message,
        )


def _warm_up() -> None:
    from conveyor.deployments.sources import fetch  # noqa: F401
    from conveyor.schemas.work_pools import default_job_template, resolve_job_variables

    resolve_job_variables(default_job_template("process"))  # imports jsonschema
