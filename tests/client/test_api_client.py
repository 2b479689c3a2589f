"""ConveyorClient: retries what is worth retrying, and fails in words when it must.

Flaky servers are tiny handlers behind ``httpx.MockTransport``; backoff sleeps are
recorded instead of slept.
"""

from __future__ import annotations

import datetime
import socket
import types
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from conveyor.client import api as client_api
from conveyor.client.api import ApiError, ConveyorClient, ServerUnreachable
from conveyor.client.embedded import embedded_client
from conveyor.schemas.api import FlowRunCreate, FlowRunFilter, LogFilter, RecordBatch
from conveyor.schemas.logs import LogRecordCreate
from conveyor.schemas.records import encode_state, encode_task_run
from conveyor.schemas.runs import TaskRun, TaskRunStateRecord
from conveyor.schemas.states import Completed, Running, StateType
from conveyor.settings import Settings

pytestmark = pytest.mark.anyio

Handler = Callable[[httpx.Request], httpx.Response]
HEALTHY = {"status": "ok", "database": "sqlite"}


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff delays the client asked for; nothing actually sleeps."""
    delays: list[float] = []

    async def record(delay: float) -> None:
        delays.append(delay)

    # Only the client module's view of asyncio: the event loop itself keeps the real sleep.
    monkeypatch.setattr(client_api, "asyncio", types.SimpleNamespace(sleep=record))
    return delays


def failing(
    times: int, failure: Callable[[httpx.Request], httpx.Response]
) -> tuple[Handler, list[str]]:
    """A handler that fails ``times`` times with ``failure``, then answers health."""
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if len(seen) <= times:
            return failure(request)
        return httpx.Response(200, json=HEALTHY)

    return handle, seen


def _client(handler: Handler, *, retries: int = 5, backoff: float = 0.2) -> ConveyorClient:
    transport = httpx.MockTransport(handler)
    return ConveyorClient(
        "http://conveyor.test", transport=transport, retries=retries, backoff=backoff
    )


def _raise(exc: type[httpx.TransportError]) -> Callable[[httpx.Request], httpx.Response]:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc("simulated", request=request)

    return fail


@pytest.mark.parametrize(
    "error", [httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError]
)
async def test_transport_errors_are_retried(
    sleeps: list[float], error: type[httpx.TransportError]
) -> None:
    handler, seen = failing(3, _raise(error))
    async with _client(handler, retries=5, backoff=0.2) as client:
        assert await client.health() == HEALTHY
    assert seen == ["GET /api/health"] * 4
    assert len(sleeps) == 3
    # Exponential backoff with jitter: about 0.2, 0.4, 0.8.
    for delay, base in zip(sleeps, [0.2, 0.4, 0.8], strict=True):
        assert base * 0.8 <= delay <= base * 1.2


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
async def test_server_errors_and_throttling_are_retried(sleeps: list[float], status: int) -> None:
    handler, seen = failing(2, lambda r: httpx.Response(status, json={"detail": "busy"}))
    async with _client(handler) as client:
        assert await client.health() == HEALTHY
    assert len(seen) == 3
    assert len(sleeps) == 2


async def test_retry_after_is_honoured(sleeps: list[float]) -> None:
    busy = httpx.Response(429, headers={"retry-after": "3"}, json={"detail": "slow down"})
    handler, _ = failing(1, lambda r: busy)
    async with _client(handler, backoff=0.1) as client:
        await client.health()
    assert len(sleeps) == 1
    assert sleeps[0] >= 3 * 0.8


async def test_backoff_is_capped(sleeps: list[float]) -> None:
    handler, _ = failing(8, lambda r: httpx.Response(503))
    async with _client(handler, retries=8, backoff=1.0) as client:
        await client.health()
    assert max(sleeps) <= 10 * 1.2


async def test_the_last_server_error_is_raised_with_its_status(sleeps: list[float]) -> None:
    handler, seen = failing(100, lambda r: httpx.Response(503, json={"detail": "maintenance"}))
    async with _client(handler, retries=2) as client:
        with pytest.raises(ApiError) as caught:
            await client.health()
    assert (caught.value.status, caught.value.detail) == (503, "maintenance")
    assert len(seen) == 3


async def test_unreachable_after_all_retries_says_what_to_do(sleeps: list[float]) -> None:
    handler, seen = failing(100, _raise(httpx.ConnectError))
    async with _client(handler, retries=2) as client:
        with pytest.raises(ServerUnreachable) as caught:
            await client.health()
    message = str(caught.value)
    assert "http://conveyor.test/api" in message
    assert "conveyor server start" in message
    assert "CONVEYOR_API_URL" in message
    assert len(seen) == 3


async def test_a_server_that_is_down_is_unreachable() -> None:
    """A real connection refused, on a port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with ConveyorClient(f"http://127.0.0.1:{port}", retries=1, backoff=0.01) as client:
        with pytest.raises(ServerUnreachable, match=f"127.0.0.1:{port}"):
            await client.read_flow_run(uuid.uuid4())


@pytest.mark.parametrize(
    ("status", "body", "detail"),
    [
        (404, {"detail": "No flow run with id x."}, "No flow run with id x."),
        (
            422,
            {"detail": "Invalid request: limit: too big", "errors": []},
            "Invalid request: limit: too big",
        ),
        (409, {"detail": "conflict"}, "conflict"),
        (
            413,
            {"detail": "Request body is larger than 10 bytes"},
            "Request body is larger than 10 bytes",
        ),
        (400, {"unexpected": True}, "Bad Request"),
    ],
)
async def test_client_errors_are_raised_at_once_with_status_and_detail(
    sleeps: list[float], status: int, body: dict[str, object], detail: str
) -> None:
    handler, seen = failing(100, lambda r: httpx.Response(status, json=body))
    async with _client(handler) as client:
        with pytest.raises(ApiError) as caught:
            await client.health()
    assert (caught.value.status, caught.value.detail) == (status, detail)
    assert f"(HTTP {status})" in str(caught.value)
    assert seen == ["GET /api/health"]  # never retried
    assert sleeps == []


async def test_a_non_json_error_body_becomes_the_detail() -> None:
    handler, _ = failing(100, lambda r: httpx.Response(418, text="<html>teapot</html>"))
    async with _client(handler) as client:
        with pytest.raises(ApiError, match="teapot") as caught:
            await client.health()
    assert caught.value.status == 418


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://h:4200", "http://h:4200/api"),
        ("http://h:4200/", "http://h:4200/api"),
        ("http://h:4200/api", "http://h:4200/api"),
        ("http://h:4200/api/", "http://h:4200/api"),
    ],
)
async def test_the_api_url_may_be_given_with_or_without_api(given: str, expected: str) -> None:
    async with ConveyorClient(given) as client:
        assert client.api_url == expected


async def test_the_client_speaks_the_real_api(tmp_path: Path) -> None:
    """Every typed method against the real application, embedded (in-process)."""
    client = await embedded_client(Settings(home=tmp_path))
    try:
        assert (await client.health())["status"] == "ok"
        run_id = uuid.uuid4()
        data = FlowRunCreate(id=run_id, flow_name="etl", name="r", tags=["x"])
        created = await client.create_flow_run(data)
        assert await client.create_flow_run(data) == created  # idempotent
        assert (await client.read_flow_run(run_id)).name == "r"
        assert (await client.read_flow(created.flow_id)).name == "etl"
        assert [r.id for r in await client.filter_flow_runs(FlowRunFilter(tags_all=["x"]))] == [
            run_id
        ]
        assert (await client.set_flow_run_state(run_id, Running())).status.value == "ACCEPT"

        now = datetime.datetime.now(datetime.timezone.utc)
        task = TaskRun(
            id=uuid.uuid4(),
            flow_run_id=run_id,
            name="t-0",
            task_key="t",
            dynamic_key="0",
            created=now,
        )
        batch = RecordBatch(
            task_runs=[encode_task_run(task)],
            task_run_states=[
                encode_state(TaskRunStateRecord(task_run_id=task.id, seq=1, state=Completed()))
            ],
            logs=[
                LogRecordCreate(name="n", level=20, message="hi", timestamp=now, flow_run_id=run_id)
            ],
        )
        assert (await client.record(batch)).model_dump() == {
            "flow_runs": 0,
            "task_runs": 1,
            "task_run_states": 1,
            "logs": 1,
        }
        assert (await client.read_task_run(task.id)).state_type is StateType.COMPLETED
        assert [s.seq for s in await client.read_task_run_states(task.id)] == [1]
        assert [t.id for t in await client.filter_task_runs()] == [task.id]
        assert [
            line.message for line in await client.filter_logs(LogFilter(flow_run_id=run_id))
        ] == ["hi"]
        assert [s.type for s in await client.read_flow_run_states(run_id)] == [
            StateType.PENDING,
            StateType.RUNNING,
        ]
        aborted = await client.set_flow_run_state(run_id, Running())
        assert aborted.status.value == "ABORT"

        await client.delete_flow_run(run_id)
        with pytest.raises(ApiError) as caught:
            await client.read_flow_run(run_id)
        assert caught.value.status == 404
        assert str(run_id) in caught.value.detail
    finally:
        await client.aclose()


async def test_closing_an_embedded_client_shuts_its_server_down(tmp_path: Path) -> None:
    client = await embedded_client(Settings(home=tmp_path))
    closed: list[str] = []

    async def note() -> None:
        closed.append("callback")

    client.on_close(note)
    await client.aclose()
    assert closed == ["callback"]
    await client.aclose()  # a second close is harmless
    assert closed == ["callback"]


async def test_an_embedded_client_has_no_blocking_poster(tmp_path: Path) -> None:
    client = await embedded_client(Settings(home=tmp_path))
    try:
        assert client.blocking_poster() is None  # ASGI is async only: the portal it is
    finally:
        await client.aclose()
