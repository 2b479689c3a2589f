"""The recorder for running with no backend; light enough to import anywhere."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.client.recorder import Event
    from conveyor.schemas.runs import FlowRun
    from conveyor.schemas.states import State


class NullRecorder:
    """No backend: nothing is recorded. Supported for users' unit tests."""

    enabled = False

    def create_flow_run(self, flow_run: FlowRun, state: State) -> State:
        return state

    def propose_flow_run_state(self, flow_run_id: uuid.UUID, state: State) -> State:
        return state

    def emit(self, event: Event) -> None:
        return None

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        return None
