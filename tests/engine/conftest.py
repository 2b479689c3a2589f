"""Fixtures shared by the engine tests.

Every test runs with ``CONVEYOR_HOME`` (and the engine's settings) pointing into a fresh
temporary folder, so nothing is ever written under ``~/.conveyor``.
"""

from __future__ import annotations

import logging
import os
import pathlib
from collections.abc import Iterator

import pytest

from conveyor.client import MemoryTransport, Recorder
from conveyor.client.transport import ApiTransport
from conveyor.engine import runtime
from conveyor.engine.concurrency import transport_of
from conveyor.settings import Settings


@pytest.fixture(autouse=True)
def conveyor_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pathlib.Path]:
    """An isolated CONVEYOR_HOME for the test, in the environment and in the engine."""
    home = tmp_path_factory.mktemp("conveyor-home")
    for name in list(os.environ):
        if name.startswith("CONVEYOR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CONVEYOR_HOME", str(home))
    # Engine behaviour is tested without a backend; recording has tests of its own.
    monkeypatch.setenv("CONVEYOR_BACKEND", "none")
    with runtime.use_settings(Settings(home=home, backend="none")):
        yield home


@pytest.fixture
def transport() -> Iterator[MemoryTransport]:
    """A MemoryTransport behind a batching Recorder that records every run of the test."""
    memory = MemoryTransport()
    recorder = Recorder(memory, flush_interval=0.05)
    with runtime.use_recorder(recorder):
        yield memory
    recorder.close()


@pytest.fixture
def backend(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiTransport]:
    """The embedded backend (a real database) under a fresh home; its API transport."""
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path))
    monkeypatch.delenv("CONVEYOR_BACKEND")
    with runtime.use_settings(Settings(home=tmp_path)):
        recorder = runtime.get_recorder()
        transport = transport_of(recorder)
        assert transport is not None
        try:
            yield transport
        finally:
            recorder.close()


@pytest.fixture
def conveyor_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog that also sees the ``conveyor`` logger, which does not propagate to root."""
    logger = logging.getLogger("conveyor")
    logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
