"""Starting a throwaway ``conveyor server start`` for a benchmark, and calling its API."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def call(url: str, body: dict[str, Any] | None = None) -> Any:
    """GET ``url`` (POST ``body`` as JSON when given); the response's JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def running_server(env: dict[str, str]) -> Iterator[str]:
    """A server on a free loopback port with ``env``; yields its API URL."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    conveyor = str(Path(sys.executable).parent / "conveyor")
    server = subprocess.Popen(
        [conveyor, "server", "start", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_healthy(api, server)
        yield api
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_healthy(api: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the server exited during start-up")
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not become healthy within 60 s")
