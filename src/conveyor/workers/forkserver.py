"""``python -m conveyor.workers.forkserver FD``: the process worker's fork server.

A fresh interpreter spends about half a second of CPU importing what a run needs
(pydantic schemas, httpx, the engine) before the run starts. This process pays that
once: it imports those modules, then waits on the socket ``FD`` it shares with the worker.
For each job the worker sends it forks; the child runs the job as
``python -m conveyor.workers.execute`` would, and this process reports the child's pid at
once and its exit status when it reaps it.

It stays single-threaded and opens no connection and no event loop, so that a fork is a
clean copy. Messages are JSON, one per packet (``SOCK_SEQPACKET``):

* worker -> here: ``{"id", "argv", "env", "cwd"}`` with three file descriptors: the write
  ends of the child's stdout and stderr, and the read end of its "go" pipe.
* here -> worker: ``{"ready": true}`` once the imports are done; ``{"id", "pid"}`` or
  ``{"id", "error"}`` per job; ``{"pid", "exit"}`` when a child ends (negative: killed by
  that signal).

The child waits for one byte on its go pipe before it runs: the worker sends it once it
knows the pid, so a job the worker never heard of (this process died in between) is
never run, and the worker may run it another way.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
from typing import Any

MAX_MESSAGE = 256 * 1024
"""The largest job message; a bigger one (a huge environment) is run as a subprocess."""

PRELOAD = (
    "conveyor",
    "conveyor.client.api",
    "conveyor.client.recorder",
    "conveyor.client.transport",
    "conveyor.deployments.entrypoints",
    "conveyor.engine.concurrency",
    "conveyor.engine.flow_engine",
    "conveyor.engine.flows",
    "conveyor.engine.runtime",
    "conveyor.engine.run_logging",
    "conveyor.engine.tasks",
    "conveyor.engine.task_engine",
    "conveyor.workers.execute",
    "conveyor.workers.forkchild",
    "conveyor.task_runners.threads",
    "cloudpickle",
    # httpx imports its transport's modules on the first request:
    "httpx",
    "httpcore",
    "h11",
    "anyio",
    "anyio._backends._asyncio",
)
"""What a run imports before it starts (found by listing what a trivial run imports);
the embedded server's modules are added when the worker records into the local database
(``--embedded``)."""

EMBEDDED_PRELOAD = ("conveyor.server.app",)


def main(argv: list[str]) -> int:
    """Never returns once it serves: it exits when the worker closes its socket."""
    if not argv or not argv[0].isdigit():
        print("usage: python -m conveyor.workers.forkserver FD [--embedded]", file=sys.stderr)
        return 2
    sock = socket.socket(fileno=int(argv[0]))
    for name in PRELOAD + (EMBEDDED_PRELOAD if "--embedded" in argv[1:] else ()):
        importlib.import_module(name)
    _warm()
    gc.freeze()  # the children share these objects' pages instead of copying them
    serve(sock)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)  # nothing to clean up: tearing down the modules would only delay the worker


def _warm() -> None:
    """Do once here what each run would otherwise do first: load the CA certificates
    (more than a whole trivial run costs) and build the schemas' validators that pydantic
    builds on first use."""
    from pydantic import BaseModel

    from conveyor.client.api import ssl_context

    ssl_context()
    classes: list[type[BaseModel]] = [BaseModel]
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        if cls.__module__.startswith("conveyor.") and not cls.__pydantic_complete__:
            cls.model_rebuild(raise_errors=False)


def serve(sock: socket.socket) -> None:
    """Fork a child per job until the worker closes its end of ``sock``."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    _send(sock, {"ready": True})
    while True:
        readable, _, _ = select.select([sock.fileno(), wake_r], [], [])
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 512)
        if sock.fileno() in readable:
            try:
                data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 3)
            except ConnectionError:
                data, fds = b"", []
            if not data:
                return  # the worker is gone; running children carry on alone
            _start(sock, json.loads(data), fds, (wake_r, wake_w))
        _reap(sock)


def _start(sock: socket.socket, job: dict[str, Any], fds: list[int], wake: tuple[int, int]) -> None:
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        _send(sock, {"id": job.get("id"), "error": f"expected 3 file descriptors, got {len(fds)}"})
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # nothing buffered here may be written twice
    error = ""
    try:
        pid = os.fork()
    except OSError as exc:
        pid, error = -1, str(exc)
    if pid == 0:
        from conveyor.workers.forkchild import run_child

        run_child(job, fds, closing=[sock.fileno(), *wake])  # never returns
    for fd in fds:
        os.close(fd)
    _send(sock, {"id": job["id"], "pid": pid} if pid > 0 else {"id": job["id"], "error": error})


def _reap(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(sock, {"pid": pid, "exit": os.waitstatus_to_exitcode(status)})


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # the worker is gone: nobody to tell
        sock.sendall(json.dumps(message).encode())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
