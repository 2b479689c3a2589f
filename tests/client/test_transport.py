"""ApiTransport.send_batch: a batch the server can never accept must not block the
recorder forever (it retries whatever send_batch raises)."""

from __future__ import annotations

import datetime
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

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
    # The state travels inside its run's record, in the half that carries the run.
    assert order == ["task_runs", "logs", "logs"]
    sent: Any = fake.received[0]["task_runs"][0]
    assert [e["seq"] for e in sent["states"]] == [1]
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


def test_a_batch_is_encoded_as_its_schema_would_encode_it() -> None:
    """``_encode`` writes JSON by type, not through ``RecordBatch``'s serializer: the
    bytes must read back as the very same batch, whatever a record carries."""
    from conveyor.client.recorder import NewFlowRun
    from conveyor.engine.ids import new_id
    from conveyor.schemas.api import RecordBatch
    from conveyor.schemas.records import encode_records
    from conveyor.schemas.results import ResultRef
    from conveyor.schemas.runs import FlowRun, TaskRunInput
    from conveyor.schemas.states import Failed, Pending

    flow_run = FlowRun(
        id=new_id(),
        name='odd "name" é\n',
        flow_name="etl",
        parameters={"n": 1, "at": NOW},
        created=NOW,
        tags=["x"],
    )
    run = TaskRun(
        id=new_id(),
        name="load-3",
        task_key="etl.load",
        dynamic_key="3",
        created=NOW,
        flow_run_id=flow_run.id,
        tags=["db", "ünï"],
        map_index=3,
        task_inputs=[TaskRunInput(task_run_id=new_id(), parameter="rows")],
        cache_key="k",
    )
    failed = Failed(message="boom \x01", name="Exploded")
    failed.state_details.cache_key = "k"
    failed.state_details.scheduled_time = NOW
    failed.result_ref = ResultRef(storage="/tmp/r", key="k", serializer="pickle")
    earlier = TaskRun(id=new_id(), name="a-0", task_key="a", dynamic_key="0", created=NOW)
    batch = Batch(
        flow_runs=[NewFlowRun(flow_run, first := Pending())],
        task_runs=[run],
        task_run_states=[
            TaskRunStateRecord(task_run_id=run.id, seq=1, state=Pending()),
            TaskRunStateRecord(task_run_id=run.id, seq=2, state=failed),
            TaskRunStateRecord(task_run_id=earlier.id, seq=4, state=Completed()),
        ],
        logs=[_line('ünïcode "quoted"')],
    )
    task_runs, states = encode_records(batch.task_runs, batch.task_run_states)
    by_schema = RecordBatch.model_construct(
        flow_runs=[transport_module._flow_run_record(flow_run, first)],
        task_runs=task_runs,
        task_run_states=states,
        logs=batch.logs,
    ).model_dump_json()
    encoded = transport_module._encode(batch)
    assert json.loads(encoded) == json.loads(by_schema)
    arrived, expected = RecordBatch.from_json(encoded), RecordBatch.from_json(by_schema.encode())
    assert arrived.model_dump_json() == expected.model_dump_json()
