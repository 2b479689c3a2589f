from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status

from conveyor.schemas.api import (
    RecordBatch,
    RecordBatchResult,
    TaskRunFilter,
    TaskRunRead,
    TaskRunStateRead,
)
from conveyor.server.api.deps import get_database
from conveyor.server.api.json_body import openapi_body, parse
from conveyor.server.database.engine import Database
from conveyor.server.models import records, task_runs

router = APIRouter(tags=["task runs"])
DB = Annotated[Database, Depends(get_database)]


@router.post("/records", response_model=RecordBatchResult, openapi_extra=openapi_body(RecordBatch))
async def record(request: Request, database: DB) -> RecordBatchResult:
    """Record a batch of flow runs started by their engines, task runs, task-run states
    and logs, as the engine ships them.

    Idempotent: repeating a batch records nothing new; states apply in ``seq`` order.
    """
    body = parse(await request.body(), RecordBatch.from_json)
    return await database.write(records.record_batch, body)


@router.post("/task_runs/filter", response_model=list[TaskRunRead])
async def filter_task_runs(body: TaskRunFilter, database: DB) -> list[TaskRunRead]:
    return [
        TaskRunRead.model_validate(r) for r in await database.read(task_runs.filter_task_runs, body)
    ]


@router.get("/task_runs/{task_run_id}", response_model=TaskRunRead)
async def read_task_run(task_run_id: uuid.UUID, database: DB) -> TaskRunRead:
    run = await database.read(task_runs.read_task_run, task_run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No task run with id {task_run_id}.")
    return TaskRunRead.model_validate(run)


@router.get("/task_runs/{task_run_id}/states", response_model=list[TaskRunStateRead])
async def read_task_run_states(task_run_id: uuid.UUID, database: DB) -> list[TaskRunStateRead]:

    states = await database.read(task_runs.read_task_run_states, task_run_id)
    if states is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No task run with id {task_run_id}.")
    return [TaskRunStateRead.model_validate(s) for s in states]
