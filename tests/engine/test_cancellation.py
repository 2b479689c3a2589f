"""Cancelling a flow run that runs in this process, against the embedded backend."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid

import pytest

from conveyor import flow, task
from conveyor.client.api import ApiError
from conveyor.client.transport import ApiTransport
from conveyor.engine import cancellation
from conveyor.engine.context import get_run_context
from conveyor.exceptions import CancelledRun
from conveyor.schemas.states import StateType


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cancellation, "POLL_SECONDS", 0.05)


def wait_until_recorded(backend: ApiTransport, flow_run_id: uuid.UUID) -> None:
    """A run is cancelled once someone sees it: a run started in-process reaches the
    server with the recorder's next batch (within its flush interval)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            backend.call(lambda client: client.read_flow_run(flow_run_id))
            return
        except ApiError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def test_a_cancelled_flow_stops_at_its_next_task_and_ends_cancelled(
    backend: ApiTransport,
) -> None:
    ran: list[int] = []
    started = threading.Event()

    @task
    def step(i: int) -> int:
        ran.append(i)
        started.set()
        time.sleep(0.02)
        return i

    @flow
    def long_pipeline() -> int:
        total = 0
        for i in range(500):
            # User code that swallows every error must not swallow the cancellation.
            with contextlib.suppress(Exception):
                total += step(i)
        return total

    ids: list[object] = []

    @flow
    def wrapper() -> None:
        ids.append(get_run_context().flow_run.id)  # type: ignore[union-attr]
        long_pipeline()

    def cancel_when_started() -> None:
        started.wait(30)
        while not ids:
            time.sleep(0.01)
        wait_until_recorded(backend, ids[0])  # type: ignore[arg-type]
        backend.call(lambda client: client.cancel_flow_run(ids[0]))  # type: ignore[arg-type]

    canceller = threading.Thread(target=cancel_when_started)
    canceller.start()
    with pytest.raises(CancelledRun):
        wrapper()
    canceller.join()
    assert 0 < len(ran) < 500  # stopped part-way, not at the end
    runs = backend.call(lambda client: client.filter_flow_runs())
    states = {run.flow_name: run.state_type for run in runs}
    # The subflow stops with the run it belongs to; both end Cancelled.
    assert states == {"wrapper": StateType.CANCELLED, "long-pipeline": StateType.CANCELLED}


def test_a_run_that_finishes_before_noticing_still_ends_cancelled(
    backend: ApiTransport,
) -> None:
    @flow
    def quick() -> int:
        run_id = get_run_context().flow_run.id  # type: ignore[union-attr]
        wait_until_recorded(backend, run_id)
        result = backend.call(lambda client: client.cancel_flow_run(run_id))
        assert result.state is not None and result.state.type is StateType.CANCELLING
        return 1

    state = quick(return_state=True)
    assert state.type is StateType.CANCELLED
    with pytest.raises(CancelledRun):
        state.result()
