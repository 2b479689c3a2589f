"""The worker's side of its fork server (``forkserver``): start it, send it jobs, learn
when their processes exit.

``ForkServer`` owns the helper process and the socket to it; ``ForkedProcess`` is a job
it forked, which the worker waits for and stops as it does a subprocess. If the fork
server dies, the processes it started carry on: the worker still sees each one exit
(through a pidfd), only its exit code is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from conveyor.workers.forkserver import MAX_MESSAGE
from conveyor.workers.process import EXIT_CODE_UNKNOWN, JobProcess, Output, ProcessJob

START_TIMEOUT_SECONDS = 30.0


class ForkServerLost(ConnectionError):
    """The fork server is gone (or never came up): the job was not started by it."""


class ForkServer:
    """One ``python -m conveyor.workers.forkserver`` and the socket to it."""

    def __init__(self, process: asyncio.subprocess.Process, sock: socket.socket) -> None:
        self.process = process
        self.pid = process.pid
        self._sock = sock
        self._ids = itertools.count()
        self._starts: dict[int, asyncio.Future[tuple[int, asyncio.Future[int | None]]]] = {}
        self._exits: dict[int, asyncio.Future[int | None]] = {}
        self.alive = True

    @classmethod
    async def start(cls, embedded: bool, timeout: float = START_TIMEOUT_SECONDS) -> ForkServer:
        """Start one and wait until it has imported what runs need; raises ForkServerLost."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv = [str(theirs.fileno()), *(["--embedded"] if embedded else [])]
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "conveyor.workers.forkserver",
                *argv,
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl+C meant for the worker is not for it
            )
        except OSError as exc:
            ours.close()
            raise ForkServerLost(f"the fork server could not start: {exc}") from exc
        finally:
            theirs.close()
        ours.setblocking(False)
        server = cls(process, ours)
        loop = asyncio.get_running_loop()
        try:
            ready = await asyncio.wait_for(loop.sock_recv(ours, MAX_MESSAGE), timeout)
        except (OSError, TimeoutError):
            ready = b""
        if not ready or not json.loads(ready).get("ready"):
            await server.close()
            raise ForkServerLost("the fork server exited or hung while starting")
        loop.add_reader(ours.fileno(), server._read)
        return server

    async def fork(
        self, job: dict[str, Any], fds: list[int]
    ) -> tuple[int, asyncio.Future[int | None]]:
        """Have it fork a child for ``job``: its pid, and a future of its exit code (None
        if the fork server died first)."""
        if not self.alive:
            raise ForkServerLost("the fork server is gone")
        job_id = next(self._ids)
        data = json.dumps({**job, "id": job_id}).encode()
        if len(data) > MAX_MESSAGE:
            raise ForkServerLost("the job is too large to send to the fork server")
        started: asyncio.Future[tuple[int, asyncio.Future[int | None]]]
        started = asyncio.get_running_loop().create_future()
        self._starts[job_id] = started
        try:
            await self._send(data, fds)
            return await started
        finally:
            self._starts.pop(job_id, None)

    async def _send(self, data: bytes, fds: list[int]) -> None:
        while True:
            try:
                socket.send_fds(self._sock, [data], fds)
                return
            except BlockingIOError:
                await _until_ready(self._sock.fileno(), writable=True)
            except OSError as exc:
                self._lost()
                raise ForkServerLost(f"the fork server is gone: {exc}") from exc

    def _read(self) -> None:
        while self.alive:
            try:
                data = self._sock.recv(MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            self._dispatch(json.loads(data))

    def _dispatch(self, message: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        if "exit" in message:
            exited = self._exits.pop(message["pid"], None)
            if exited is not None and not exited.done():
                exited.set_result(int(message["exit"]))
            return
        started = self._starts.get(message.get("id", -1))
        if started is None or started.done():
            return
        if "pid" in message:
            exit_future: asyncio.Future[int | None] = loop.create_future()
            self._exits[message["pid"]] = exit_future
            started.set_result((int(message["pid"]), exit_future))
        else:
            started.set_exception(ForkServerLost(str(message.get("error"))))

    def _lost(self) -> None:
        if not self.alive:
            return
        self.alive = False
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()
        for started in self._starts.values():
            if not started.done():
                started.set_exception(ForkServerLost("the fork server died"))
        for exited in self._exits.values():
            if not exited.done():
                exited.set_result(None)
        self._exits.clear()

    async def close(self, timeout: float = 5.0) -> None:
        """Stop it: closing the socket ends it; its children carry on."""
        self._lost()
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


class ForkedProcess(JobProcess):
    """A job the fork server started."""

    def __init__(
        self, pid: int, output: Output, exit_code: asyncio.Future[int | None], pidfd: int | None
    ) -> None:
        super().__init__(pid, output)
        self._exit_code = exit_code
        self._pidfd = pidfd

    @classmethod
    async def start(cls, server: ForkServer, job: ProcessJob) -> ForkedProcess:
        """Fork it; on ForkServerLost or OSError the job did not run (a child that is
        never told to go exits at once)."""
        if not job.working_dir.is_dir():
            raise FileNotFoundError(f"No such working directory: {str(job.working_dir)!r}")
        ours: list[int] = []  # closed if the start fails
        theirs: list[int] = []  # the child's ends: closed here once sent
        pidfd: int | None = None
        try:
            stdout_r = _pipe(ours, theirs) if job.stream_output else -1
            if stdout_r < 0:
                theirs.append(os.open(os.devnull, os.O_WRONLY))
            stderr_r = _pipe(ours, theirs)
            go_r, go_w = os.pipe()
            theirs.append(go_r)
            ours.append(go_w)
            request = {
                "argv": job.execute_args,
                "env": job.env,
                "cwd": str(job.working_dir),
                "flow_run": job.flow_run,
            }
            pid, exit_code = await server.fork(request, theirs)
            pidfd = _pidfd(pid)  # while it waits to go it is alive, and no other's pid
            output = Output(job.stream_output)
            stdout = await _reader(stdout_r) if stdout_r >= 0 else None
            output.follow(stdout, await _reader(stderr_r))
        except BaseException:
            for fd in [*ours, *([pidfd] if pidfd is not None else [])]:
                with contextlib.suppress(OSError):
                    os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        with contextlib.suppress(BrokenPipeError):  # it died already: its exit says how
            os.write(go_w, b"g")
        os.close(go_w)
        return cls(pid, output, exit_code, pidfd)

    async def _exited(self) -> int:
        code = await self._exit_code
        if code is None:  # the fork server died: the child may run on
            await self._gone()
            code = EXIT_CODE_UNKNOWN
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        return code

    async def _gone(self) -> None:
        if self._pidfd is None:
            while _alive(self.pid):
                await asyncio.sleep(0.5)
            return
        await _until_ready(self._pidfd, writable=False)


async def _until_ready(fd: int, *, writable: bool) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if writable:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        if writable:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


def _pipe(readers: list[int], writers: list[int]) -> int:
    """A new pipe, its ends added to the lists; returns the read end."""
    read, write = os.pipe()
    readers.append(read)
    writers.append(write)
    return read


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # before Linux 5.3: polled instead
        return None


async def _reader(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(loop=loop)
    pipe = open(fd, "rb", buffering=0)  # noqa: SIM115 - the transport owns and closes it
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe)
    return reader


def _alive(pid: int) -> bool:
    """Running, neither exited nor a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
