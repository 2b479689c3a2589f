"""A child of the fork server: it becomes the run's process, then runs the job as
``python -m conveyor.workers.execute ENTRYPOINT CODE_DIR`` does.

Becoming the run's process means what a fresh subprocess gets from the worker: a process
group of its own (cancelling stops the whole group), the pipes for stdout and stderr,
stdin from /dev/null, the job's working directory, environment and ``PYTHONPATH``. What
the fork server cached from its own environment is forgotten, so the run reads the job's
settings. It leaves with ``os._exit``, after what an interpreter does when it exits:
waiting for its threads, running ``atexit`` callbacks, flushing its streams.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import signal
import sys
import tempfile
import threading
import time
from typing import Any, NoReturn


def run_child(job: dict[str, Any], fds: list[int], closing: list[int]) -> NoReturn:
    """Never returns: the exit code is the run's, as ``execute`` would have exited."""
    code = 1
    try:
        if _become(job, fds, closing):
            from conveyor.workers.execute import main

            code = main(list(job["argv"]), flow_run=job.get("flow_run"))
        else:
            code = 0  # the worker never confirmed the job: it is not ours to run
    except SystemExit as exc:
        code = _exit_code(exc)
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        code = -signal.SIGINT
    except BaseException:  # noqa: BLE001 - reported as the interpreter would, then exit
        sys.excepthook(*sys.exc_info())
        code = 1
    _exit(code)


def _become(job: dict[str, Any], fds: list[int], closing: list[int]) -> bool:
    """Set the process up as the job's; False if the worker did not say go."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for fd in closing:
        with contextlib.suppress(OSError):
            os.close(fd)
    os.setsid()
    stdout, stderr, go = fds
    null = os.open(os.devnull, os.O_RDONLY)
    for source, target in ((null, 0), (stdout, 1), (stderr, 2)):
        os.dup2(source, target)
        os.close(source)
    for stream, line_buffering in ((sys.stdout, False), (sys.stderr, True)):
        if isinstance(stream, io.TextIOWrapper):  # as a fresh interpreter's, on a pipe
            stream.reconfigure(line_buffering=line_buffering)
    confirmed = os.read(go, 1) == b"g"
    os.close(go)
    if not confirmed:
        return False
    old_pythonpath = _entries(os.environ.get("PYTHONPATH"))
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update(job["env"])
    time.tzset()
    tempfile.tempdir = None
    # As ``python -m`` in the working directory: it first, then the job's PYTHONPATH,
    # then the interpreter's own entries (the fork server's first entry and its
    # PYTHONPATH replaced).
    own = [entry for entry in sys.path[1:] if entry not in old_pythonpath]
    sys.path[:] = [os.getcwd(), *_entries(os.environ.get("PYTHONPATH")), *own]
    from conveyor.engine import runtime
    from conveyor.workers import execute

    sys.argv = [str(execute.__file__), *job["argv"]]
    runtime.reset()
    return True


def _entries(pythonpath: str | None) -> list[str]:
    return [os.path.abspath(entry) for entry in (pythonpath or "").split(os.pathsep) if entry]


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _exit(code: int) -> NoReturn:
    try:
        shutdown = getattr(threading, "_shutdown", None)
        if shutdown is not None:
            shutdown()  # waits for non-daemon threads, as interpreter exit does
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    finally:
        if code < 0:  # killed by a signal, as a fresh interpreter would be
            signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
        os._exit(code & 0xFF)
