"""Cancelling a flow run that runs in this process: cooperative, at its next task call.

``conveyor flow-run cancel`` (or ``POST /api/flow_runs/{id}/cancel``) moves a running
run to Cancelling. One watcher thread per process asks the backend, every
``POLL_SECONDS``, whether any top-level run of this process is being cancelled, and sets
that run's event. The run stops at its next task call (or subflow's task call) with
``FlowRunCancelled``, which no ``except Exception`` in user code swallows; the run ends
Cancelled and calling it raises ``CancelledRun``. Tasks already running finish in the
background (a thread cannot be stopped safely); a run that calls no more tasks ends
Cancelled when it next reports its state, because the server answers every proposal of a
cancelling run with Cancelled.

The same thread heartbeats each watched run every ``HEARTBEAT_SECONDS`` (the first one
that long after the run started, so a short run costs no request), which lets the server's
reaper make the run Crashed if this process dies without saying so.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.client.transport import ApiTransport

logger = logging.getLogger("conveyor.flow_runs")

POLL_SECONDS = 2.0
HEARTBEAT_SECONDS = 10.0


class FlowRunCancelled(BaseException):
    """Raised inside a flow run being cancelled, at its next task call."""


class CancellationWatcher:
    """Watches the top-level runs of this process for a request to cancel them."""

    def __init__(self) -> None:
        self._runs: dict[uuid.UUID, tuple[ApiTransport, threading.Event]] = {}
        self._next_heartbeat: dict[uuid.UUID, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, transport: ApiTransport, flow_run_id: uuid.UUID) -> threading.Event:
        """An event set when the run is asked to cancel; watched until ``unwatch``."""
        requested = threading.Event()
        with self._lock:
            self._runs[flow_run_id] = (transport, requested)
            self._next_heartbeat[flow_run_id] = time.monotonic() + HEARTBEAT_SECONDS
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._poll, name="conveyor-cancellation", daemon=True
                )
                self._thread.start()
        return requested

    def unwatch(self, flow_run_id: uuid.UUID) -> None:
        with self._lock:
            self._runs.pop(flow_run_id, None)
            self._next_heartbeat.pop(flow_run_id, None)

    def _poll(self) -> None:
        stop = threading.Event()  # never set: the thread lives as long as the process
        while not stop.wait(POLL_SECONDS):
            with self._lock:
                runs = list(self._runs.items())
            for flow_run_id, (transport, requested) in runs:
                self._heartbeat_if_due(transport, flow_run_id)
                if not requested.is_set() and _is_cancelling(transport, flow_run_id):
                    logger.warning(
                        "Flow run %s is being cancelled; it stops at its next task call.",
                        flow_run_id,
                    )
                    requested.set()

    def _heartbeat_if_due(self, transport: ApiTransport, flow_run_id: uuid.UUID) -> None:
        now = time.monotonic()
        with self._lock:
            due = self._next_heartbeat.get(flow_run_id)
            if due is None or now < due:
                return
            self._next_heartbeat[flow_run_id] = now + HEARTBEAT_SECONDS
        try:
            transport.call(lambda client: client.flow_run_heartbeat(flow_run_id))
        except Exception:
            # A missed beat is harmless, the next may land; a 404 too: a run started
            # in-process reaches the server only with the recorder's next batch.
            logger.debug("Flow run %s: heartbeat not delivered.", flow_run_id, exc_info=True)


def _is_cancelling(transport: ApiTransport, flow_run_id: uuid.UUID) -> bool:
    try:
        run = transport.call(lambda client: client.read_flow_run(flow_run_id))
    except Exception:  # noqa: BLE001 - an unreachable server only delays the answer
        return False
    return run.state_type is not None and run.state_type.value in ("CANCELLING", "CANCELLED")


watcher = CancellationWatcher()
