"""A top-level flow run's process heartbeats it (from the cancellation watcher's thread),
so the server's reaper can tell when the process died; a short run sends none."""

from __future__ import annotations

import time
import uuid

import pytest

from conveyor import flow
from conveyor.client.api import ConveyorClient
from conveyor.client.transport import ApiTransport
from conveyor.engine import cancellation


@pytest.fixture
def beats(monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    """The runs heartbeated, one entry per heartbeat the server accepted."""
    monkeypatch.setattr(cancellation, "POLL_SECONDS", 0.05)
    sent: list[uuid.UUID] = []
    original = ConveyorClient.flow_run_heartbeat

    async def recording(self: ConveyorClient, flow_run_id: uuid.UUID) -> None:
        await original(self, flow_run_id)
        sent.append(flow_run_id)

    monkeypatch.setattr(ConveyorClient, "flow_run_heartbeat", recording)
    return sent


def test_a_running_flow_heartbeats_its_run(
    backend: ApiTransport, beats: list[uuid.UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cancellation, "HEARTBEAT_SECONDS", 0.1)

    @flow
    def slow() -> None:
        # The watcher thread may be mid-wait of an earlier test's longer poll interval.
        deadline = time.monotonic() + 10
        while len(beats) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)

    state = slow(return_state=True)

    assert len(beats) >= 2
    assert set(beats) == {state.state_details.flow_run_id}


def test_a_short_flow_sends_no_heartbeat(backend: ApiTransport, beats: list[uuid.UUID]) -> None:
    @flow
    def quick() -> int:
        time.sleep(0.2)
        return 1

    assert quick() == 1
    assert beats == []
