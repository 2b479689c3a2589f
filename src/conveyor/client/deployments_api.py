"""The client's methods for work pools, work queues, workers and deployments.

A mixin of ``ConveyorClient`` (``client/api.py``), kept apart so that file stays readable.
Names go into URLs quoted, so any name the server accepts can be asked for. The schemas
load on first use: a flow recording over HTTP never needs them, and they cost ~25 ms.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

if TYPE_CHECKING:
    from conveyor.schemas.api import FlowRunRead
    from conveyor.schemas.deployments import (
        DeploymentBackfill,
        DeploymentBackfillResult,
        DeploymentCreate,
        DeploymentFilter,
        DeploymentFlowRunCreate,
        DeploymentRead,
        DeploymentUpdate,
        WorkerFilter,
        WorkerRead,
        WorkPoolCreate,
        WorkPoolFilter,
        WorkPoolRead,
        WorkPoolUpdate,
        WorkQueueCreate,
        WorkQueueFilter,
        WorkQueueRead,
        WorkQueueUpdate,
    )
    from conveyor.schemas.workers import ClaimResult, WorkerClaim

M = TypeVar("M", bound=BaseModel)


def _many(model: type[M], data: Sequence[Any]) -> list[M]:
    return [model.model_validate(item) for item in data]


def _pool(name: str) -> str:
    return f"/work_pools/{quote(name, safe='')}"


def _queue(pool: str, name: str) -> str:
    return f"{_pool(pool)}/queues/{quote(name, safe='')}"


class DeploymentsApi:
    if TYPE_CHECKING:

        async def request(
            self,
            method: str,
            path: str,
            body: BaseModel | None = None,
            *,
            only_fields_set: bool = False,
        ) -> Any: ...

    # -- work pools ---------------------------------------------------------------------
    async def create_work_pool(self, data: WorkPoolCreate) -> WorkPoolRead:
        """A new pool, with its queue ``default``; ``ApiError`` 409 if the name is taken."""
        from conveyor.schemas.deployments import WorkPoolRead

        return WorkPoolRead.model_validate(await self.request("POST", "/work_pools/", data))

    async def read_work_pool(self, name: str) -> WorkPoolRead:
        from conveyor.schemas.deployments import WorkPoolRead

        return WorkPoolRead.model_validate(await self.request("GET", _pool(name)))

    async def filter_work_pools(self, flt: WorkPoolFilter | None = None) -> list[WorkPoolRead]:
        """Pools sorted by name."""
        from conveyor.schemas.deployments import WorkPoolFilter, WorkPoolRead

        data = await self.request("POST", "/work_pools/filter", flt or WorkPoolFilter())
        return _many(WorkPoolRead, data)

    async def update_work_pool(self, name: str, data: WorkPoolUpdate) -> WorkPoolRead:
        """Change the fields set on ``data`` (built with them as keywords)."""
        from conveyor.schemas.deployments import WorkPoolRead

        return WorkPoolRead.model_validate(
            await self.request("PATCH", _pool(name), data, only_fields_set=True)
        )

    async def delete_work_pool(self, name: str) -> None:
        await self.request("DELETE", _pool(name))

    # -- work queues --------------------------------------------------------------------
    async def create_work_queue(self, pool: str, data: WorkQueueCreate) -> WorkQueueRead:
        from conveyor.schemas.deployments import WorkQueueRead

        data_ = await self.request("POST", f"{_pool(pool)}/queues/", data)
        return WorkQueueRead.model_validate(data_)

    async def read_work_queue(self, pool: str, name: str) -> WorkQueueRead:
        from conveyor.schemas.deployments import WorkQueueRead

        return WorkQueueRead.model_validate(await self.request("GET", _queue(pool, name)))

    async def filter_work_queues(
        self, pool: str, flt: WorkQueueFilter | None = None
    ) -> list[WorkQueueRead]:
        """The pool's queues by priority (1 first), then name."""
        from conveyor.schemas.deployments import WorkQueueFilter, WorkQueueRead

        data = await self.request("POST", f"{_pool(pool)}/queues/filter", flt or WorkQueueFilter())
        return _many(WorkQueueRead, data)

    async def update_work_queue(self, pool: str, name: str, data: WorkQueueUpdate) -> WorkQueueRead:
        """Change the fields set on ``data`` (built with them as keywords)."""
        from conveyor.schemas.deployments import WorkQueueRead

        return WorkQueueRead.model_validate(
            await self.request("PATCH", _queue(pool, name), data, only_fields_set=True)
        )

    async def delete_work_queue(self, pool: str, name: str) -> None:
        await self.request("DELETE", _queue(pool, name))

    # -- workers ------------------------------------------------------------------------
    async def worker_heartbeat(self, pool: str, name: str) -> WorkerRead:
        """Say the worker ``name`` is alive (registers it the first time)."""
        from conveyor.schemas.deployments import WorkerHeartbeat, WorkerRead

        body = WorkerHeartbeat(name=name)
        data = await self.request("POST", f"{_pool(pool)}/workers/heartbeat", body)
        return WorkerRead.model_validate(data)

    async def filter_workers(self, pool: str, flt: WorkerFilter | None = None) -> list[WorkerRead]:
        from conveyor.schemas.deployments import WorkerFilter, WorkerRead

        data = await self.request("POST", f"{_pool(pool)}/workers/filter", flt or WorkerFilter())
        return _many(WorkerRead, data)

    async def claim_runs(self, pool: str, claim: WorkerClaim) -> ClaimResult:
        """Claim due runs of the pool for a worker, waiting up to ``claim.wait_seconds``
        when none is due (the client's timeout must be longer)."""
        from conveyor.schemas.workers import ClaimResult

        return ClaimResult.model_validate(await self.request("POST", f"{_pool(pool)}/claim", claim))

    # -- deployments --------------------------------------------------------------------
    async def deploy(self, data: DeploymentCreate) -> DeploymentRead:
        """Create the deployment, or replace the one with its flow and name (same id)."""
        from conveyor.schemas.deployments import DeploymentRead

        return DeploymentRead.model_validate(await self.request("POST", "/deployments/", data))

    async def read_deployment(self, deployment_id: uuid.UUID) -> DeploymentRead:
        from conveyor.schemas.deployments import DeploymentRead

        return DeploymentRead.model_validate(
            await self.request("GET", f"/deployments/{deployment_id}")
        )

    async def read_deployment_by_name(self, flow_name: str, name: str) -> DeploymentRead:
        from conveyor.schemas.deployments import DeploymentRead

        path = f"/deployments/name/{quote(flow_name, safe='')}/{quote(name, safe='')}"
        return DeploymentRead.model_validate(await self.request("GET", path))

    async def filter_deployments(self, flt: DeploymentFilter | None = None) -> list[DeploymentRead]:
        """Deployments sorted by name, then flow name."""
        from conveyor.schemas.deployments import DeploymentFilter, DeploymentRead

        data = await self.request("POST", "/deployments/filter", flt or DeploymentFilter())
        return _many(DeploymentRead, data)

    async def update_deployment(
        self, deployment_id: uuid.UUID, data: DeploymentUpdate
    ) -> DeploymentRead:
        """Change the fields set on ``data`` (built with them as keywords)."""
        from conveyor.schemas.deployments import DeploymentRead

        path = f"/deployments/{deployment_id}"
        return DeploymentRead.model_validate(
            await self.request("PATCH", path, data, only_fields_set=True)
        )

    async def delete_deployment(self, deployment_id: uuid.UUID) -> None:
        await self.request("DELETE", f"/deployments/{deployment_id}")

    async def create_flow_run_from_deployment(
        self, deployment_id: uuid.UUID, data: DeploymentFlowRunCreate | None = None
    ) -> FlowRunRead:
        """A SCHEDULED run of the deployment (due now unless ``scheduled_time`` says)."""
        from conveyor.schemas.api import FlowRunRead
        from conveyor.schemas.deployments import DeploymentFlowRunCreate

        path = f"/deployments/{deployment_id}/create_flow_run"
        body = data or DeploymentFlowRunCreate()
        return FlowRunRead.model_validate(await self.request("POST", path, body))

    async def backfill_deployment(
        self, deployment_id: uuid.UUID, data: DeploymentBackfill
    ) -> DeploymentBackfillResult:
        """Runs for the scheduled times in ``[start, end)`` that have none."""
        from conveyor.schemas.deployments import DeploymentBackfillResult

        path = f"/deployments/{deployment_id}/backfill"
        return DeploymentBackfillResult.model_validate(await self.request("POST", path, data))
