"""ApiTransport.send_batch: a batch the server can never accept must not block the
recorder forever (it retries whatever send_batch raises)."""

from __future__ import annotations

import datetime
import json
import logging
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from conveyor.client import transport as transport_module
from conveyor.client.api import ApiError, ConveyorClient
from conveyor.client.recorder import Batch
from conveyor.client.transport import ApiTransport
from conveyor.schemas.logs import LogRecordCreate
from conveyor.schemas.runs import TaskRun, TaskRunStateRecord
from conveyor.schemas.states import Completed, Running
from conveyor.settings import Settings

Handler = Callable[[httpx.Request], httpx.Response]
NOW = datetime.datetime.now(datetime.timezone.utc)


class Server:
    """Receives batches; refuses those with more than ``max_events`` (413) or with a line
    saying "bad" (422), and fails with ``status`` when set."""

    def __init__(self) -> None:
        self.received: list[dict[str, list[dict[str, object]]]] = []
        self.max_events = 1000
        self.status: int | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.status is not None:
            return httpx.Response(self.status, json={"detail": "down for maintenance"})
        body = json.loads(request.content)
        events = sum(len(v) for v in body.values())
        if events > self.max_events:
            return httpx.Response(413, json={"detail": "too large"})
        if any(line["message"] == "bad" for line in body["logs"]):
            return httpx.Response(422, json={"detail": "logs.0.level: bad"})
        self.received.append(body)
        counts = {k: len(v) for k, v in body.items()}
        return httpx.Response(200, json=counts)

    def messages(self) -> list[object]:
        return [line["message"] for batch in self.received for line in batch["logs"]]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Server, ApiTransport]]:
    fake = Server()

    async def connect(settings: Settings) -> ConveyorClient:
        mock = httpx.MockTransport(fake)
        return ConveyorClient("http://conveyor.test", transport=mock, retries=0)

    monkeypatch.setattr(transport_module, "connect", connect)
    api = ApiTransport(Settings(api_url="http://conveyor.test"))
    try:
        yield fake, api
    finally:
        api.close()


def _line(message: str) -> LogRecordCreate:
    return LogRecordCreate(name="n", level=20, message=message, timestamp=NOW)


def test_a_bad_record_is_isolated_and_dropped_alone(
    server: tuple[Server, ApiTransport], caplog: pytest.LogCaptureFixture
) -> None:
    fake, api = server
    batch = Batch(logs=[_line(m) for m in ["a", "b", "bad", "c", "d"]])
    logger = logging.getLogger("conveyor.client")
    logger.addHandler(caplog.handler)
    try:
        api.send_batch(batch)
    finally:
        logger.removeHandler(caplog.handler)
    assert fake.messages() == ["a", "b", "c", "d"]
    assert "refused 1 run record(s)" in caplog.text


def test_a_batch_too_large_is_sent_in_halves_keeping_task_runs_first(
    server: tuple[Server, ApiTransport],
) -> None:
    fake, api = server
    fake.max_events = 2
    task = TaskRun(id=uuid.uuid4(), name="t-0", task_key="t", dynamic_key="0", created=NOW)
    state = TaskRunStateRecord(task_run_id=task.id, seq=1, state=Running())
    api.send_batch(Batch(task_runs=[task], task_run_states=[state], logs=[_line("x"), _line("y")]))
    order = [
        kind
        for batch in fake.received
        for kind in ("task_runs", "task_run_states", "logs")
        for _ in batch[kind]
    ]
    assert order == ["task_runs", "task_run_states", "logs", "logs"]
    assert all(sum(len(v) for v in batch.values()) <= 2 for batch in fake.received)


def test_server_errors_are_raised_for_the_recorder_to_retry(
    server: tuple[Server, ApiTransport],
) -> None:
    fake, api = server
    fake.status = 503
    with pytest.raises(ApiError) as caught:
        api.send_batch(Batch(logs=[_line("a")]))
    assert caught.value.status == 503
    fake.status = None
    api.send_batch(Batch(logs=[_line("a")]))
    assert fake.messages() == ["a"]


class Orchestrator:
    """Answers proposals: 404 for an unknown run, 422 when the records carried hold a
    line saying "bad", ACCEPT otherwise; record batches go through ``Server``."""

    def __init__(self, known: uuid.UUID) -> None:
        self.known = known
        self.records = Server()
        self.proposals: list[dict[str, object]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/records"):
            return self.records(request)
        if str(self.known) not in request.url.path:
            return httpx.Response(404, json={"detail": "No flow run with that id."})
        body = json.loads(request.content)
        carried = body.get("records") or {"logs": []}
        if any(line["message"] == "bad" for line in carried["logs"]):
            return httpx.Response(422, json={"detail": "records.logs.0.level: bad"})
        self.proposals.append(body)
        return httpx.Response(200, json={"status": "ACCEPT", "state": None, "reason": "ok"})


@pytest.fixture
def orchestrator(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Orchestrator, ApiTransport]]:
    fake = Orchestrator(uuid.uuid4())

    async def connect(settings: Settings) -> ConveyorClient:
        return ConveyorClient(
            "http://conveyor.test", transport=httpx.MockTransport(fake), retries=0
        )

    monkeypatch.setattr(transport_module, "connect", connect)
    api = ApiTransport(Settings(api_url="http://conveyor.test"))
    try:
        yield fake, api
    finally:
        api.close()


def test_a_proposal_carries_the_records_queued_before_it(
    orchestrator: tuple[Orchestrator, ApiTransport],
) -> None:
    fake, api = orchestrator
    state = api.propose_flow_run_state(fake.known, Completed(), Batch(logs=[_line("done")]))
    assert state.is_completed()
    assert fake.records.received == []  # one request, not two
    (proposal,) = fake.proposals
    assert [line["message"] for line in proposal["records"]["logs"]] == ["done"]  # type: ignore[index]


def test_refused_records_are_sent_apart_and_do_not_cost_the_proposal(
    orchestrator: tuple[Orchestrator, ApiTransport],
) -> None:
    fake, api = orchestrator
    batch = Batch(logs=[_line(m) for m in ["a", "bad", "b"]])
    assert api.propose_flow_run_state(fake.known, Completed(), batch).is_completed()
    assert fake.records.messages() == ["a", "b"]  # the bad line alone is dropped
    (proposal,) = fake.proposals
    assert proposal.get("records") is None


def test_a_run_the_server_does_not_know_keeps_its_own_outcome(
    orchestrator: tuple[Orchestrator, ApiTransport], caplog: pytest.LogCaptureFixture
) -> None:
    _, api = orchestrator
    logger = logging.getLogger("conveyor.client")
    logger.addHandler(caplog.handler)
    try:
        state = api.propose_flow_run_state(uuid.uuid4(), Completed())
    finally:
        logger.removeHandler(caplog.handler)
    assert state.is_completed()
    assert "The server has no flow run" in caplog.text
