"""Request and response bodies of claiming runs: what a worker asks for and gets back."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field

from conveyor.schemas.api import FlowRunRead, Input, Output
from conveyor.schemas.sources import CodeSource

MAX_CLAIM = 100
MAX_CLAIM_WAIT_SECONDS = 30.0
MAX_PREFETCH_SECONDS = 3600.0


class WorkerClaim(Input):
    """Claim up to ``limit`` due runs of a pool for the worker ``worker_name``.

    With nothing due, the request waits up to ``wait_seconds`` for a run to become due.
    """

    worker_name: str = Field(min_length=1, max_length=255)
    queues: list[str] | None = Field(default=None, min_length=1)
    """Names of the pool's queues to take runs from; None: all of them."""
    limit: int = Field(default=1, ge=1, le=MAX_CLAIM)
    wait_seconds: float = Field(default=0.0, ge=0, le=MAX_CLAIM_WAIT_SECONDS)
    prefetch_seconds: float = Field(default=0.0, ge=0, le=MAX_PREFETCH_SECONDS)
    """Also claim runs due within this many seconds: the worker starts their job early and
    the run itself starts at its scheduled time."""


class ClaimedRun(Output):
    """Everything a worker needs to launch one run; the code stays where ``source`` says."""

    flow_run: FlowRunRead
    deployment_id: uuid.UUID | None
    entrypoint: str | None
    source: CodeSource | None
    """None: the code is in the worker's working directory."""
    work_queue_name: str
    base_job_template: dict[str, Any]
    job_variables: dict[str, Any]
    """Resolved: the template's defaults < the deployment's < the run's own."""


class ClaimResult(Output):
    worker_id: uuid.UUID
    runs: list[ClaimedRun] = Field(default_factory=list)
