from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from conveyor.schemas.api import (
    FlowRunCreate,
    FlowRunFilter,
    FlowRunRead,
    FlowRunResume,
    OrchestrationResult,
    OrchestrationStatus,
    RecordBatch,
    SetState,
    StateRead,
)
from conveyor.server.api import claims
from conveyor.server.api.deps import get_database
from conveyor.server.api.json_body import openapi_body, parse
from conveyor.server.database import orm
from conveyor.server.database.engine import Database
from conveyor.server.models import claims as claim_models
from conveyor.server.models import flow_runs, records
from conveyor.server.orchestration.policy import (
    FlowRunNotFound,
    ResumeRefused,
    RunInputInvalid,
    cancel_flow_run,
    resume_flow_run,
    set_flow_run_state,
)
from conveyor.server.orchestration.retry import retry_flow_run

router = APIRouter(prefix="/flow_runs", tags=["flow runs"])
DB = Annotated[Database, Depends(get_database)]
URGENT_RECORDS = 50
"""A proposal carrying at most this many records is a short write (``write_first``)."""


def _record_count(batch: RecordBatch) -> int:
    inline_states = sum(len(run.get("states", ())) for run in batch.task_runs)
    return (
        len(batch.flow_runs)
        + len(batch.task_runs)
        + inline_states
        + len(batch.task_run_states)
        + len(batch.logs)
    )


def _read(run: orm.FlowRun, flow_name: str | None) -> FlowRunRead:
    out = FlowRunRead.model_validate(run)
    out.flow_name = flow_name
    return out


def _optional(extra: dict[str, Any]) -> dict[str, Any]:
    """``openapi_body`` for a body that may be left out."""
    extra["requestBody"]["required"] = False
    return extra


def _missing(flow_run_id: uuid.UUID) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"No flow run with id {flow_run_id}.")


@router.post("/", response_model=FlowRunRead, status_code=status.HTTP_201_CREATED)
async def create_flow_run(body: FlowRunCreate, database: DB, response: Response) -> FlowRunRead:
    """Create a flow run. Repeating a request with the same ``id`` returns the same run."""

    def create(session: Session) -> tuple[FlowRunRead, bool]:
        parent = body.parent_flow_run_id
        if parent is not None and flow_runs.read_flow_run(session, parent) is None:
            raise HTTPException(
                422,  # (the constant was renamed across Starlette versions)
                f"parent_flow_run_id: no flow run with id {parent}.",
            )
        run, created = flow_runs.create_flow_run(session, body)
        return _read(run, body.flow_name), created

    run, created = await database.write(create)
    if not created:
        response.status_code = status.HTTP_200_OK
    return run


@router.post("/filter", response_model=list[FlowRunRead])
async def filter_flow_runs(body: FlowRunFilter, database: DB) -> list[FlowRunRead]:
    return [_read(run, name) for run, name in await database.read(flow_runs.filter_flow_runs, body)]


@router.get("/{flow_run_id}", response_model=FlowRunRead)
async def read_flow_run(flow_run_id: uuid.UUID, database: DB) -> FlowRunRead:

    def read(session: Session) -> FlowRunRead:
        run = flow_runs.read_flow_run(session, flow_run_id)
        if run is None:
            raise _missing(flow_run_id)
        return _read(run, flow_runs.flow_name_of(session, run))

    return await database.read(read)


@router.post(
    "/{flow_run_id}/set_state",
    response_model=OrchestrationResult,
    openapi_extra=openapi_body(SetState),
)
async def set_state(flow_run_id: uuid.UUID, request: Request, database: DB) -> OrchestrationResult:
    """Propose a state; the answer says ACCEPT, REJECT, WAIT (with a delay) or ABORT.

    ``records``, when given, are recorded first, in the same transaction (they may hold
    the run's own creation).
    """
    body = parse(await request.body(), SetState.from_json)

    def propose(session: Session) -> OrchestrationResult:
        if body.records is not None:
            records.record_batch(session, body.records)
        return set_flow_run_state(session, flow_run_id, body.state, force=body.force)

    # A state change is what a run waits on: it goes before bulk writes, unless it
    # carries a batch of records big enough to be bulk itself.
    small = body.records is None or _record_count(body.records) <= URGENT_RECORDS
    try:
        return await (database.write_first if small else database.write)(propose)
    except FlowRunNotFound:
        raise _missing(flow_run_id) from None


@router.post("/{flow_run_id}/cancel", response_model=OrchestrationResult)
async def cancel(flow_run_id: uuid.UUID, database: DB) -> OrchestrationResult:
    """Cancel the run: Cancelled at once if it has not started; otherwise Cancelling, until
    its engine stops at its next step. ABORT (with the reason) if it already finished."""
    try:
        return await database.write(cancel_flow_run, flow_run_id)
    except FlowRunNotFound:
        raise _missing(flow_run_id) from None


@router.post(
    "/{flow_run_id}/retry",
    response_model=OrchestrationResult,
    responses={409: {"description": "The run has not finished, or has no deployment."}},
)
async def retry(flow_run_id: uuid.UUID, request: Request, database: DB) -> OrchestrationResult:
    """Retry a finished run of a deployment: Scheduled again (named AwaitingRetry), due
    now, for any worker of its pool. 409 with the reason if the run has not finished, or
    was not made from a deployment (no worker could start it again)."""
    try:
        result = await database.write(retry_flow_run, flow_run_id)
    except FlowRunNotFound:
        raise _missing(flow_run_id) from None
    if result.status is OrchestrationStatus.ABORT:
        raise HTTPException(status.HTTP_409_CONFLICT, result.reason or "Not retried.")
    claims.claim_waiters(request).notify()  # due now: workers waiting on the pool look
    return result


@router.post(
    "/{flow_run_id}/resume",
    response_model=OrchestrationResult,
    responses={409: {"description": "The run is not paused, or its pause expired."}},
    openapi_extra=_optional(openapi_body(FlowRunResume)),
)
async def resume(
    flow_run_id: uuid.UUID, request: Request, database: DB
) -> OrchestrationResult | JSONResponse:
    """Resume a paused run: Running again if its process waits (a pause), Scheduled for a
    worker to run it again if it was suspended. ``run_input`` must fit the schema of the
    input the pause asked for (422 naming the field, and nothing changes); 409 with the
    reason if the run is not paused or its pause expired."""
    run_input = parse(await request.body(), FlowRunResume.from_json).run_input
    try:
        result = await database.write(resume_flow_run, flow_run_id, run_input)
    except FlowRunNotFound:
        raise _missing(flow_run_id) from None
    except ResumeRefused as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except RunInputInvalid as exc:
        details = [{"field": field, "message": message} for field, message in exc.errors]
        return JSONResponse(
            status_code=422, content={"detail": f"Invalid request: {exc}", "errors": details}
        )
    if result.state is not None and result.state.is_scheduled():
        claims.claim_waiters(request).notify()  # a suspended run is due again: claim it
    return result


@router.post("/{flow_run_id}/heartbeat", status_code=status.HTTP_204_NO_CONTENT)
async def heartbeat(flow_run_id: uuid.UUID, database: DB) -> Response:
    """The process (or worker) running the run is alive: stamps ``last_heartbeat``."""
    now = datetime.datetime.now(datetime.timezone.utc)
    if not await database.write_first(claim_models.flow_run_heartbeat, flow_run_id, now):
        raise _missing(flow_run_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{flow_run_id}/states", response_model=list[StateRead])
async def read_states(flow_run_id: uuid.UUID, database: DB) -> list[StateRead]:

    def read(session: Session) -> list[StateRead]:
        if flow_runs.read_flow_run(session, flow_run_id) is None:
            raise _missing(flow_run_id)
        return [StateRead.model_validate(s) for s in flow_runs.read_states(session, flow_run_id)]

    return await database.read(read)


@router.delete("/{flow_run_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_flow_run(flow_run_id: uuid.UUID, database: DB) -> Response:
    if not await database.write(flow_runs.delete_flow_run, flow_run_id):
        raise _missing(flow_run_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
