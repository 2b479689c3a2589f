"""The process worker's job: a flow run in a local subprocess, in a process group of its own.

The child is ``python -m conveyor.workers.execute ENTRYPOINT CODE_DIR`` unless the job's
``command`` says otherwise; it learns its run from ``CONVEYOR_FLOW_RUN_ID``. The worker
usually starts that default command through its fork server instead (``forked``); both
kinds of process look the same to it (``JobProcess``). Its output is
copied to the worker's (``stream_output``), and the last lines of its stderr are kept for
the message of a run that crashed. Stopping it signals the whole group, so processes the
flow started stop with it.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import os
import shlex
import signal
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

STDERR_TAIL_LINES = 50
EXIT_CODE_UNKNOWN = -1000
"""What ``wait`` returns for a process whose exit status nobody could read."""


@dataclass
class ProcessJob:
    """What to start: rendered from the pool's template and the run's job variables."""

    flow_run_id: uuid.UUID
    command: list[str]
    env: dict[str, str]
    working_dir: Path
    stream_output: bool = True
    execute_args: list[str] | None = None
    """``[ENTRYPOINT, CODE_DIR]`` when the command is the default ``execute`` one, which
    the fork server can run without starting an interpreter; None for a custom command."""
    flow_run: dict[str, Any] | None = None
    """The run as claimed (JSON), given to a forked process so it need not read it."""


def job_from_configuration(
    flow_run_id: uuid.UUID,
    configuration: dict[str, Any],
    *,
    entrypoint: str,
    code_dir: Path,
    scratch_dir: Path,
    api_url: str | None,
    flow_run: dict[str, Any] | None = None,
) -> ProcessJob:
    """The job a rendered job configuration of a ``process`` pool describes."""
    command = configuration.get("command")
    execute_args = None if command else [entrypoint, str(code_dir)]
    argv = (
        shlex.split(command)
        if command
        else [sys.executable, "-m", "conveyor.workers.execute", *(execute_args or [])]
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
        execute_args=execute_args,
        flow_run=flow_run,
    )


class Output:
    """A child's stdout and stderr: copied to the worker's own, the end of stderr kept."""

    def __init__(self, stream: bool) -> None:
        self.stream = stream
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._pumps: list[asyncio.Task[None]] = []

    def follow(self, stdout: asyncio.StreamReader | None, stderr: asyncio.StreamReader) -> None:
        if stdout is not None:
            self._pumps.append(asyncio.create_task(self._pump(stdout, sys.stdout, keep=False)))
        self._pumps.append(asyncio.create_task(self._pump(stderr, sys.stderr, keep=True)))

    async def _pump(self, stream: asyncio.StreamReader, sink: IO[str], keep: bool) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace")
            if keep:
                self.stderr_tail.append(text.rstrip("\n"))
            if self.stream:
                sink.write(text)
                sink.flush()

    async def drain(self) -> None:
        """Copy what is still buffered in the pipes; a grandchild holding a pipe open must
        not keep the worker waiting."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._pumps), 5)
        for pump in self._pumps:
            pump.cancel()

    def tail(self) -> str:
        return "\n".join(self.stderr_tail)


class JobProcess(abc.ABC):
    """A started job, the leader of its own process group: wait for it, stop it, read
    the tail of its stderr."""

    def __init__(self, pid: int, output: Output) -> None:
        self.pid = pid
        self.output = output
        self._exit: asyncio.Future[int] | None = None

    @abc.abstractmethod
    async def _exited(self) -> int:
        """The exit code once the process has exited (negative: killed by that signal)."""

    def _exit_future(self) -> asyncio.Future[int]:
        if self._exit is None:
            self._exit = asyncio.ensure_future(self._exited())
        return self._exit

    async def wait(self) -> int:
        """The exit code (negative: killed by that signal), once its output is read."""
        code = await asyncio.shield(self._exit_future())
        await self.output.drain()
        return code

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    async def stop(self, grace_seconds: float) -> None:
        """SIGTERM to the group; SIGKILL if it has not exited after ``grace_seconds``."""
        self.signal_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self._exit_future()), grace_seconds)
        except TimeoutError:
            self.signal_group(signal.SIGKILL)
        # The leader may be gone while others of its group linger.
        self.signal_group(signal.SIGKILL)

    def tail(self) -> str:
        return self.output.tail()


class RunningProcess(JobProcess):
    """A job started as a plain subprocess."""

    def __init__(self, process: asyncio.subprocess.Process, output: Output) -> None:
        super().__init__(process.pid, output)
        self.process = process

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
        output = Output(job.stream_output)
        assert process.stderr is not None
        output.follow(process.stdout, process.stderr)
        return cls(process, output)

    async def _exited(self) -> int:
        return await self.process.wait()


def describe_exit(code: int) -> str:
    if code == EXIT_CODE_UNKNOWN:
        return "exited (its code is unknown: the fork server that started it had died)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"
