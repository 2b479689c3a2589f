"""The process worker's job: a flow run in a local subprocess, in a process group of its own.

The child is ``python -m conveyor.workers.execute ENTRYPOINT CODE_DIR`` unless the job's
``command`` says otherwise; it learns its run from ``CONVEYOR_FLOW_RUN_ID``. Its output is
copied to the worker's (``stream_output``), and the last lines of its stderr are kept for
the message of a run that crashed. Stopping it signals the whole group, so processes the
flow started stop with it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shlex
import signal
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

STDERR_TAIL_LINES = 50


@dataclass
class ProcessJob:
    """What to start: rendered from the pool's template and the run's job variables."""

    flow_run_id: uuid.UUID
    command: list[str]
    env: dict[str, str]
    working_dir: Path
    stream_output: bool = True


def job_from_configuration(
    flow_run_id: uuid.UUID,
    configuration: dict[str, Any],
    *,
    entrypoint: str,
    code_dir: Path,
    scratch_dir: Path,
    api_url: str | None,
) -> ProcessJob:
    """The job a rendered job configuration of a ``process`` pool describes."""
    command = configuration.get("command")
    argv = (
        shlex.split(command)
        if command
        else [sys.executable, "-m", "conveyor.workers.execute", entrypoint, str(code_dir)]
    )
    env = {**os.environ, **(configuration.get("env") or {})}
    env["CONVEYOR_FLOW_RUN_ID"] = str(flow_run_id)
    if api_url:
        env["CONVEYOR_API_URL"] = api_url
    working_dir = configuration.get("working_dir")
    return ProcessJob(
        flow_run_id=flow_run_id,
        command=argv,
        env=env,
        working_dir=Path(working_dir) if working_dir else scratch_dir,
        stream_output=bool(configuration.get("stream_output", True)),
    )


@dataclass
class RunningProcess:
    """A started job: wait for it, stop it, read the tail of its stderr."""

    job: ProcessJob
    process: asyncio.subprocess.Process
    stderr_tail: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=STDERR_TAIL_LINES)
    )
    _pumps: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(cls, job: ProcessJob) -> RunningProcess:
        process = await asyncio.create_subprocess_exec(
            *job.command,
            env=job.env,
            cwd=job.working_dir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if job.stream_output else asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group: stopped as a whole
        )
        running = cls(job, process)
        if process.stdout is not None:
            running._pumps.append(asyncio.create_task(running._pump(process.stdout, sys.stdout)))
        assert process.stderr is not None
        running._pumps.append(asyncio.create_task(running._pump(process.stderr, sys.stderr)))
        return running

    async def _pump(self, stream: asyncio.StreamReader, sink: IO[str]) -> None:
        keep = stream is self.process.stderr
        while line := await stream.readline():
            text = line.decode(errors="replace")
            if keep:
                self.stderr_tail.append(text.rstrip("\n"))
            if self.job.stream_output:
                sink.write(text)
                sink.flush()

    async def wait(self) -> int:
        """The exit code (negative: killed by that signal), once its output is read."""
        code = await self.process.wait()
        # Output still buffered in the pipes is copied; a grandchild holding a pipe open
        # must not keep the worker waiting.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._pumps), 5)
        for pump in self._pumps:
            pump.cancel()
        return code

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    async def stop(self, grace_seconds: float) -> None:
        """SIGTERM to the group; SIGKILL if it has not exited after ``grace_seconds``."""
        self.signal_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self.process.wait()), grace_seconds)
        except TimeoutError:
            self.signal_group(signal.SIGKILL)
        # The leader may be gone while others of its group linger.
        self.signal_group(signal.SIGKILL)

    def tail(self) -> str:
        return "\n".join(self.stderr_tail)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"
