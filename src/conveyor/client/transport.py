"""The engine's transport to the backend: a server over HTTP, or the embedded one."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_core import to_json

from conveyor.client.api import ApiError, ConveyorClient, ServerUnreachable, set_state_body
from conveyor.client.embedded import connect
from conveyor.client.portal import Portal
from conveyor.client.poster import BlockingPoster
from conveyor.client.recorder import Batch, Event, Shipment
from conveyor.exceptions import ConveyorError
from conveyor.schemas.api import (
    FlowRunRecord,
    OrchestrationResult,
    OrchestrationStatus,
)
from conveyor.schemas.records import encode_records
from conveyor.schemas.runs import FlowRun
from conveyor.schemas.states import State
from conveyor.settings import Settings

logger = logging.getLogger("conveyor.client")
T = TypeVar("T")

# A WAIT answer is followed; past this the run gives up rather than block forever.
MAX_WAIT_SECONDS = 24 * 3600.0


def _halves(batch: Batch) -> tuple[Batch, Batch]:
    """Split in recording order: a record never travels ahead of its run."""
    events: list[Event] = batch.events()
    first, second = Batch(), Batch()
    middle = len(events) // 2
    for index, event in enumerate(events):
        (first if index < middle else second).add(event)
    return first, second


class OrchestrationAborted(ConveyorError):
    """The server refused a state change for good (e.g. the run was already finished)."""


def jsonable_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON the server can store; values it cannot encode become their repr."""
    from pydantic_core import to_jsonable_python

    return {k: to_jsonable_python(v, fallback=repr) for k, v in parameters.items()}


class ApiTransport:
    """Ships the engine's records through the REST API, from a private event loop."""

    def __init__(self, settings: Settings) -> None:
        self._portal = Portal("conveyor-api")
        self._client = self._portal.call(connect(settings))
        self.api_url = self._client.api_url
        # Batches go from the flusher's thread, proposals from the flows' threads: each
        # over a blocking connection of its own, not through the portal's event loop
        # (a hand-off there and back costs a proposal ~2.5 ms while the GIL is busy).
        self._poster = self._client.blocking_poster()
        self._proposer = self._client.blocking_poster()
        self._proposing = threading.Lock()
        # A flow's thread may send a batch on the flusher's connection and read the
        # answer later (the recorder lets one batch be on its way at a time).
        self.dispatch: Callable[[Batch], Shipment] | None = (
            self._dispatch if self._poster is not None else None
        )

    def propose_flow_run_state(
        self, flow_run_id: uuid.UUID, state: State, records: Batch | None = None
    ) -> State:
        body = _encode(records) if records is not None and len(records) else None
        waited = 0.0
        while True:
            try:
                result = self._propose(flow_run_id, state, body)
            except ApiError as exc:
                if body is not None and exc.status in (413, 422) and records is not None:
                    # A record the server refuses must not cost the proposal: the records
                    # go the way of any batch (split, the bad one dropped), then the state.
                    self.send_batch(records)
                    body = records = None
                    continue
                if exc.status == 404:
                    # The server lost the run (deleted, or its creation was refused and
                    # logged): the flow's own outcome still stands here.
                    logger.error(
                        "The server has no flow run %s; state %s was not recorded.",
                        flow_run_id,
                        state.name,
                    )
                    return state
                raise
            body = None  # recorded; a WAIT answer re-proposes the state alone
            if result.status is OrchestrationStatus.ACCEPT:
                return state
            if result.status is OrchestrationStatus.REJECT and result.state is not None:
                return result.state
            if result.status is OrchestrationStatus.WAIT and waited < MAX_WAIT_SECONDS:
                delay = max(result.delay_seconds or 0.0, 0.05)
                logger.info("The server asks this run to wait %.1fs: %s", delay, result.reason)
                time.sleep(delay)
                waited += delay
                continue
            raise OrchestrationAborted(
                f"The server refused state {state!r} for flow run {flow_run_id}: {result.reason}"
            )

    def _propose(
        self, flow_run_id: uuid.UUID, state: State, records: bytes | None
    ) -> OrchestrationResult:
        what = f"recording state {state.name} of the flow run"
        proposer = self._proposer
        if proposer is None:
            return self._until_reachable(
                lambda: self._portal.call(
                    self._client.set_flow_run_state(flow_run_id, state, records=records)
                ),
                what,
            )
        body = set_state_body(state, records=records)
        content = body if isinstance(body, bytes) else body.model_dump_json()
        path = f"/flow_runs/{flow_run_id}/set_state"
        with self._proposing:  # one connection; flows in several threads take turns
            data = self._until_reachable(lambda: proposer.post(path, content), what)
        return OrchestrationResult.model_validate(data)

    def _until_reachable(self, request: Callable[[], T], what: str) -> T:
        """Repeat a request while the server is unreachable: the run waits (and says so)
        rather than fail, and catches up when the server is back. Safe because creating a
        run and proposing a state are idempotent."""
        delay = 1.0
        warned_at = 0.0
        while True:
            try:
                return request()
            except ServerUnreachable as exc:
                now = time.monotonic()
                if now - warned_at > 30:
                    logger.warning("%s is delayed: %s Retrying.", what.capitalize(), exc)
                    warned_at = now
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def call(self, request: Callable[[ConveyorClient], Coroutine[Any, Any, T]]) -> T:
        """Make one request with this transport's client, from any thread (blocks)."""
        return self._portal.call(request(self._client))

    def send_batch(self, batch: Batch) -> None:
        """Ship a batch. The recorder retries failures; but a batch the server refuses as
        too large (413) or invalid (422) is split and sent in halves, so one bad record
        costs only itself, and a record refused on its own (any 4xx) is dropped with an
        error, because sending it again cannot succeed."""
        body = _encode(batch)
        try:
            if self._poster is not None:
                self._poster.post("/records", body)
            else:
                self._portal.call(self._client.record(body))
        except ApiError as exc:
            if exc.status in (413, 422) and len(batch) > 1:
                for half in _halves(batch):
                    self.send_batch(half)
                return
            if 400 <= exc.status < 500 and exc.status not in (408, 429):
                logger.error("The server refused %d run record(s): %s", len(batch), exc)
                return
            raise

    def _dispatch(self, batch: Batch) -> Shipment:
        poster = self._poster
        assert poster is not None
        poster.start("/records", _encode(batch))
        return _Shipment(poster)

    def close(self) -> None:
        try:
            for poster in (self._poster, self._proposer):
                if poster is not None:
                    poster.close()
            self._portal.call(self._client.aclose(), timeout=5)
        finally:
            self._portal.stop()


class _Shipment:
    """A batch ``dispatch`` sent; the recorder gives it to ``send_batch`` if it fails."""

    def __init__(self, poster: BlockingPoster) -> None:
        self._poster = poster

    def answered(self) -> bool:
        return self._poster.answered()

    def finish(self) -> None:
        self._poster.finish()


def _encode(batch: Batch) -> bytes:
    """A batch as the JSON of a ``RecordBatch``.

    Task runs, states and logs are built from the engine's own records, so valid by
    construction: not re-validated. A flow run carries a user's name, tags and
    parameters, which are checked here (a bad one is refused like any bad record).
    Encoded by type, not through ``RecordBatch``'s schema: for these plain records that
    takes half the time, and this runs on the flow's process, beside its thread.
    """
    flow_runs = []
    for new in batch.flow_runs:
        try:
            flow_runs.append(_flow_run_record(new.flow_run, new.state))
        except ValidationError as exc:
            logger.error("Flow run %r cannot be recorded: %s", new.flow_run.name, exc)
    task_runs, task_run_states = encode_records(batch.task_runs, batch.task_run_states)
    return to_json(
        {
            "flow_runs": flow_runs,
            "task_runs": task_runs,
            "task_run_states": task_run_states,
            "logs": batch.logs,
        }
    )


def _flow_run_record(flow_run: FlowRun, state: State) -> FlowRunRecord:
    return FlowRunRecord(
        id=flow_run.id,
        flow_name=flow_run.flow_name,
        name=flow_run.name,
        flow_version=flow_run.flow_version,
        parameters=jsonable_parameters(flow_run.parameters),
        tags=flow_run.tags,
        parent_flow_run_id=flow_run.parent_flow_run_id,
        parent_task_run_id=flow_run.parent_task_run_id,
        state=state,
    )
