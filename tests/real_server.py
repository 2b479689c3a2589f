"""``conveyor server start`` in a subprocess, for the end-to-end tests that need a real
server (workers, ``serve``, pauses). Imported by its full name: ``tests.real_server``."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

CONVEYOR = str(Path(sys.executable).parent / "conveyor")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_healthy(
    api_url: str,
    process: subprocess.Popen[Any],
    exit_output: Callable[[], str],
    start_seconds: float = 30,
) -> None:
    """Return once the server ``process`` answers ``/health``; if it exits first, the
    assertion carries ``exit_output()``."""
    deadline = time.monotonic() + start_seconds
    while True:
        try:
            if httpx.get(f"{api_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {exit_output()}")
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)


@contextlib.contextmanager
def running_server(env: dict[str, str], *, start_seconds: float = 30) -> Iterator[str]:
    """A server with ``env`` on a free loopback port, once ``/api/health`` answers; yields
    its API URL and stops it afterwards. If it exits while starting, the assertion
    carries its output."""
    port = free_port()
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(
            [CONVEYOR, "server", "start", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        url = f"http://127.0.0.1:{port}/api"

        def exit_output() -> str:
            output.seek(0)
            return output.read()

        try:
            wait_healthy(url, process, exit_output, start_seconds)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)
