"""``ConveyorClient``: the async client of the REST API.

Retries connection errors, 5xx and 429 with exponential backoff: safe, because creating a
run with a client-chosen id, proposing a state with a transition id and recording a batch
are all idempotent on the server.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import random
import ssl
import uuid
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from conveyor.client.deployments_api import DeploymentsApi
from conveyor.exceptions import ConveyorError
from conveyor.schemas.api import (
    ArtifactCreate,
    ArtifactFilter,
    ArtifactRead,
    ConcurrencyAcquire,
    ConcurrencyLeaseRead,
    ConcurrencyLeaseRenew,
    ConcurrencyLimitCreate,
    ConcurrencyLimitRead,
    FlowRead,
    FlowRunCreate,
    FlowRunFilter,
    FlowRunRead,
    FlowRunResume,
    LogFilter,
    LogRead,
    OrchestrationResult,
    RecordBatch,
    RecordBatchResult,
    SetState,
    StateRead,
    TaskRunFilter,
    TaskRunRead,
    TaskRunStateRead,
    VariableRead,
    VariableSet,
)
from conveyor.schemas.states import State

if TYPE_CHECKING:
    from conveyor.client.poster import BlockingPoster

logger = logging.getLogger("conveyor.client")
M = TypeVar("M", bound=BaseModel)

RETRY_STATUS = frozenset({429, 502, 503, 504, 500})


class ApiError(ConveyorError):
    """The server answered with an error; ``status`` is the HTTP status code."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"{detail} (HTTP {status})")


class ServerUnreachable(ConveyorError):
    """The server could not be reached after all retries."""


def ssl_context() -> ssl.SSLContext:
    """The TLS settings every client of this process shares (httpx's defaults, which
    honour ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``): loading the CA certificates takes a
    tenth of a second or more, too much to pay for each client, and a run makes two."""
    return _ssl_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=4)
def _ssl_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx.create_ssl_context()


class ConveyorClient(DeploymentsApi):
    def __init__(
        self,
        api_url: str,
        *,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        if not self.api_url.endswith("/api"):
            self.api_url += "/api"
        self.retries = retries
        self.backoff = backoff
        self._timeout = timeout
        self._transport = transport
        self._http = httpx.AsyncClient(
            base_url=self.api_url, timeout=timeout, transport=transport, verify=self._verify()
        )
        self._on_close: list[Callable[[], Awaitable[None]]] = []

    async def __aenter__(self) -> ConveyorClient:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        for close in reversed(self._on_close):
            await close()
        self._on_close.clear()

    def _verify(self) -> ssl.SSLContext | bool:
        return True if self._transport is not None else ssl_context()

    def on_close(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` when the client closes (the embedded server's shutdown)."""
        self._on_close.append(callback)

    def blocking_poster(self) -> BlockingPoster | None:
        """A blocking connection to this client's server for POSTs from a plain thread
        (the recorder's flusher); None when requests go through a transport of the
        caller's (the embedded server, tests) or a proxy, which only this client knows."""
        from conveyor.client.poster import BlockingPoster, proxied

        if self._transport is not None or proxied(self.api_url):
            return None
        return BlockingPoster(
            self.api_url, timeout=self._timeout, retries=self.retries, backoff=self.backoff
        )

    # -- transport ----------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        body: BaseModel | bytes | None = None,
        *,
        only_fields_set: bool = False,
    ) -> Any:
        """``body`` is a model, or JSON already encoded. ``only_fields_set`` sends just
        the top-level fields set on a model: a PATCH's changes. (Not pydantic's
        ``exclude_unset``, which would also drop the defaults of nested models, a
        schedule's ``kind`` among them.)"""
        content: str | bytes | None = None
        if isinstance(body, bytes):
            content = body
        elif body is not None:
            include = set(body.model_fields_set) if only_fields_set else None
            content = body.model_dump_json(include=include)
        headers = {"content-type": "application/json"} if content is not None else None
        backoff = Backoff(self.retries, self.backoff)
        while True:
            try:
                response = await self._http.request(method, path, content=content, headers=headers)
            except httpx.TransportError as exc:
                delay = backoff.next_delay(None)
                if delay is None:
                    raise unreachable(self.api_url, exc) from exc
            else:
                delay = backoff.next_delay(
                    response.status_code, response.headers.get("retry-after")
                )
                if delay is None:
                    return decode(response)
            await asyncio.sleep(delay)

    # -- resources ----------------------------------------------------------------------
    async def health(self) -> dict[str, str]:
        result: dict[str, str] = await self.request("GET", "/health")
        return result

    async def read_flow(self, flow_id: uuid.UUID) -> FlowRead:
        return FlowRead.model_validate(await self.request("GET", f"/flows/{flow_id}"))

    async def create_flow_run(self, data: FlowRunCreate) -> FlowRunRead:
        return FlowRunRead.model_validate(await self.request("POST", "/flow_runs/", data))

    async def read_flow_run(self, flow_run_id: uuid.UUID) -> FlowRunRead:
        return FlowRunRead.model_validate(await self.request("GET", f"/flow_runs/{flow_run_id}"))

    async def filter_flow_runs(self, flt: FlowRunFilter | None = None) -> list[FlowRunRead]:
        data = await self.request("POST", "/flow_runs/filter", flt or FlowRunFilter())
        return _many(FlowRunRead, data)

    async def set_flow_run_state(
        self,
        flow_run_id: uuid.UUID,
        state: State,
        *,
        force: bool = False,
        records: RecordBatch | bytes | None = None,
    ) -> OrchestrationResult:
        """Propose ``state``; ``records`` (a batch, or one already encoded as JSON) are
        recorded first, in the same transaction."""
        body = set_state_body(state, force=force, records=records)
        data = await self.request("POST", f"/flow_runs/{flow_run_id}/set_state", body)
        return OrchestrationResult.model_validate(data)

    async def cancel_flow_run(self, flow_run_id: uuid.UUID) -> OrchestrationResult:
        """Cancelled at once if not started; Cancelling until its engine stops if running."""
        data = await self.request("POST", f"/flow_runs/{flow_run_id}/cancel")
        return OrchestrationResult.model_validate(data)

    async def retry_flow_run(self, flow_run_id: uuid.UUID) -> OrchestrationResult:
        """Schedule a finished deployment run again, due now (AwaitingRetry); ``ApiError``
        409 with the reason if it has not finished or has no deployment."""
        data = await self.request("POST", f"/flow_runs/{flow_run_id}/retry")
        return OrchestrationResult.model_validate(data)

    async def resume_flow_run(
        self, flow_run_id: uuid.UUID, run_input: dict[str, Any] | None = None
    ) -> OrchestrationResult:
        """Resume a paused run with ``run_input`` (the input its pause asked for, if any):
        Running again, or Scheduled if it was suspended. ``ApiError`` 422 naming the field
        when the input does not fit, 409 when the run is not paused or its pause expired."""
        body = FlowRunResume(run_input=run_input)
        data = await self.request("POST", f"/flow_runs/{flow_run_id}/resume", body)
        return OrchestrationResult.model_validate(data)

    async def flow_run_heartbeat(self, flow_run_id: uuid.UUID) -> None:
        """Say the process running the run is alive."""
        await self.request("POST", f"/flow_runs/{flow_run_id}/heartbeat")

    async def read_flow_run_states(self, flow_run_id: uuid.UUID) -> list[StateRead]:
        return _many(StateRead, await self.request("GET", f"/flow_runs/{flow_run_id}/states"))

    async def delete_flow_run(self, flow_run_id: uuid.UUID) -> None:
        await self.request("DELETE", f"/flow_runs/{flow_run_id}")

    async def record(self, batch: RecordBatch | bytes) -> RecordBatchResult:
        return RecordBatchResult.model_validate(await self.request("POST", "/records", batch))

    async def read_task_run(self, task_run_id: uuid.UUID) -> TaskRunRead:
        return TaskRunRead.model_validate(await self.request("GET", f"/task_runs/{task_run_id}"))

    async def read_task_run_states(self, task_run_id: uuid.UUID) -> list[TaskRunStateRead]:
        data = await self.request("GET", f"/task_runs/{task_run_id}/states")
        return _many(TaskRunStateRead, data)

    async def filter_task_runs(self, flt: TaskRunFilter | None = None) -> list[TaskRunRead]:
        data = await self.request("POST", "/task_runs/filter", flt or TaskRunFilter())
        return _many(TaskRunRead, data)

    async def filter_logs(self, flt: LogFilter) -> list[LogRead]:
        return _many(LogRead, await self.request("POST", "/logs/filter", flt))

    async def set_variable(
        self, name: str, value: Any, tags: Sequence[str] | None = None
    ) -> VariableRead:
        """Create the variable, or replace its value (any JSON) and tags."""
        body = VariableSet(value=value, tags=list(tags or []))
        return VariableRead.model_validate(
            await self.request("PUT", f"/variables/{quote(name, safe='')}", body)
        )

    async def read_variable(self, name: str) -> VariableRead:
        return VariableRead.model_validate(
            await self.request("GET", f"/variables/{quote(name, safe='')}")
        )

    async def list_variables(self, limit: int = 50, offset: int = 0) -> list[VariableRead]:
        data = await self.request("GET", f"/variables/?limit={limit}&offset={offset}")
        return _many(VariableRead, data)

    async def delete_variable(self, name: str) -> None:
        await self.request("DELETE", f"/variables/{quote(name, safe='')}")

    async def create_artifact(self, artifact: ArtifactCreate) -> ArtifactRead:
        return ArtifactRead.model_validate(await self.request("POST", "/artifacts/", artifact))

    async def read_artifact(self, artifact_id: uuid.UUID) -> ArtifactRead:
        return ArtifactRead.model_validate(await self.request("GET", f"/artifacts/{artifact_id}"))

    async def filter_artifacts(self, flt: ArtifactFilter | None = None) -> list[ArtifactRead]:
        """Artifacts, newest first."""
        data = await self.request("POST", "/artifacts/filter", flt or ArtifactFilter())
        return _many(ArtifactRead, data)

    async def read_latest_artifact(self, key: str) -> ArtifactRead:
        """The newest artifact with this key."""
        return ArtifactRead.model_validate(
            await self.request("GET", f"/artifacts/latest/{quote(key, safe='')}")
        )

    async def delete_artifact(self, artifact_id: uuid.UUID) -> None:
        await self.request("DELETE", f"/artifacts/{artifact_id}")

    async def set_concurrency_limit(self, name: str, limit: int) -> ConcurrencyLimitRead:
        """Create the concurrency limit, or change its limit."""
        body = ConcurrencyLimitCreate(name=name, limit=limit)
        return ConcurrencyLimitRead.model_validate(
            await self.request("POST", "/concurrency_limits/", body)
        )

    async def read_concurrency_limit(self, name: str) -> ConcurrencyLimitRead:
        return ConcurrencyLimitRead.model_validate(
            await self.request("GET", f"/concurrency_limits/{quote(name, safe='')}")
        )

    async def list_concurrency_limits(
        self, limit: int = 50, offset: int = 0
    ) -> list[ConcurrencyLimitRead]:
        data = await self.request("GET", f"/concurrency_limits/?limit={limit}&offset={offset}")
        return _many(ConcurrencyLimitRead, data)

    async def delete_concurrency_limit(self, name: str) -> None:
        await self.request("DELETE", f"/concurrency_limits/{quote(name, safe='')}")

    async def reset_concurrency_limit(self, name: str) -> None:
        """Drop every lease of the limit, freeing all its slots."""
        await self.request("POST", f"/concurrency_limits/{quote(name, safe='')}/reset")

    async def acquire_concurrency_slots(
        self,
        name: str,
        slots: int = 1,
        *,
        holder: str | None = None,
        ttl_seconds: float = 30.0,
        timeout_seconds: float = 0.0,
    ) -> ConcurrencyLeaseRead:
        """A lease of ``slots`` slots; the server waits up to ``timeout_seconds`` (at most
        60) for them, then answers 423 (``ApiError`` with ``status == 423``)."""
        body = ConcurrencyAcquire(
            slots=slots, holder=holder, ttl_seconds=ttl_seconds, timeout_seconds=timeout_seconds
        )
        path = f"/concurrency_limits/{quote(name, safe='')}/acquire"
        return ConcurrencyLeaseRead.model_validate(await self.request("POST", path, body))

    async def renew_concurrency_lease(
        self, lease_id: uuid.UUID, ttl_seconds: float = 30.0
    ) -> ConcurrencyLeaseRead:
        body = ConcurrencyLeaseRenew(ttl_seconds=ttl_seconds)
        data = await self.request("POST", f"/concurrency_leases/{lease_id}/renew", body)
        return ConcurrencyLeaseRead.model_validate(data)

    async def release_concurrency_lease(self, lease_id: uuid.UUID) -> None:
        await self.request("DELETE", f"/concurrency_leases/{lease_id}")


def _many(model: type[M], data: Sequence[Any]) -> list[M]:
    return [model.model_validate(item) for item in data]


class Backoff:
    """When to try a request again: after a connection error, a 5xx or a 429, at growing,
    jittered intervals (at least what a Retry-After header asks), ``retries`` times."""

    def __init__(self, retries: int, first_delay: float) -> None:
        self._left = retries
        self._delay = first_delay

    def next_delay(self, status: int | None, retry_after: str | None = None) -> float | None:
        """Seconds to wait before trying again after an answer with ``status`` (None: no
        answer at all) and ``Retry-After`` header; None when the answer stands."""
        if self._left <= 0 or (status is not None and status not in RETRY_STATUS):
            return None
        self._left -= 1
        delay = self._delay
        if retry_after and retry_after.isdigit():
            delay = max(delay, float(retry_after))
        self._delay = min(self._delay * 2, 10.0)
        return delay * random.uniform(0.8, 1.2)


def set_state_body(
    state: State, *, force: bool = False, records: RecordBatch | bytes | None = None
) -> SetState | bytes:
    """What ``POST /flow_runs/{id}/set_state`` takes: records already encoded as JSON go
    into the body as they are."""
    proposal = SetState(state=state, force=force)
    if isinstance(records, bytes):
        head = proposal.model_dump_json(exclude={"records"}).encode()
        return head[:-1] + b',"records":' + records + b"}"
    proposal.records = records  # the engine's own records: not validated again
    return proposal


def unreachable(api_url: str, exc: Exception) -> ServerUnreachable:
    return ServerUnreachable(
        f"Cannot reach the Conveyor server at {api_url} ({exc}); "
        "start it with `conveyor server start` or check CONVEYOR_API_URL."
    )


def decode(response: httpx.Response) -> Any:
    """A response's JSON, or ApiError naming the server's complaint."""
    return decode_body(response.status_code, response.reason_phrase, response.content)


def decode_body(status: int, reason: str, payload: bytes) -> Any:
    """The JSON of a response with ``status``, or ApiError naming the server's complaint."""
    if status == 204:
        return None
    try:
        data = json.loads(payload)
    except ValueError:
        data = {"detail": payload[:500].decode(errors="replace")}
    if status >= 400:
        detail = data.get("detail") if isinstance(data, dict) else None
        raise ApiError(status, str(detail or reason))
    return data
