"""Fixtures for the task-runner tests: every runner, one shared Dask cluster, a recorder.

Test modules here import ``tasks_for_runners`` by plain name: pytest's default
("prepend") import mode puts this folder on ``sys.path``, and spawned process and Dask
workers inherit that path, so they can load the tasks by reference too.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Iterator

import pytest

from conveyor import (
    DaskTaskRunner,
    ProcessPoolTaskRunner,
    SequentialTaskRunner,
    TaskRunner,
    ThreadPoolTaskRunner,
)
from conveyor.client import MemoryTransport, Recorder
from conveyor.engine import runtime
from conveyor.settings import Settings

RUNNER_NAMES = ["sequential", "threads", "processes", "dask"]


@pytest.fixture(autouse=True)
def conveyor_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pathlib.Path]:
    """Nothing a test runs may write under ~/.conveyor: point CONVEYOR_HOME elsewhere."""
    home = tmp_path_factory.mktemp("conveyor-home")
    for name in list(os.environ):
        if name.startswith("CONVEYOR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CONVEYOR_HOME", str(home))
    # Engine behaviour is tested without a backend; recording has tests of its own.
    monkeypatch.setenv("CONVEYOR_BACKEND", "none")
    with runtime.use_settings(Settings(home=home, backend="none")):
        yield home


@pytest.fixture(scope="session")
def dask_address() -> Iterator[str]:
    """One local Dask cluster (two worker processes) shared by every test that needs it."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None
    )
    try:
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()


@pytest.fixture
def make_runner(request: pytest.FixtureRequest) -> Callable[[str], TaskRunner]:
    """Builds a runner by name; the Dask cluster starts only when a Dask runner is asked for."""

    def make(name: str) -> TaskRunner:
        if name == "sequential":
            return SequentialTaskRunner()
        if name == "threads":
            return ThreadPoolTaskRunner(max_workers=4)
        if name == "processes":
            return ProcessPoolTaskRunner(max_workers=2)
        if name == "dask":
            return DaskTaskRunner(address=request.getfixturevalue("dask_address"))
        raise ValueError(f"unknown runner {name!r}")

    return make


@pytest.fixture(params=RUNNER_NAMES)
def runner(request: pytest.FixtureRequest, make_runner: Callable[[str], TaskRunner]) -> TaskRunner:
    """Each of the four runners in turn: the contract suite runs against all of them."""
    return make_runner(str(request.param))


@pytest.fixture
def transport() -> Iterator[MemoryTransport]:
    """Records every run started during the test into memory."""
    memory = MemoryTransport()
    recorder = Recorder(memory, flush_interval=0.05)
    with runtime.use_recorder(recorder):
        yield memory
    recorder.close()
