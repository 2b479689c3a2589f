"""ConveyorClient's work pool, queue, worker and deployment methods, against the embedded
server (the same application, in-process, over SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.client.api import ApiError
from conveyor.client.embedded import embedded_client
from conveyor.schemas.deployments import (
    DeploymentCreate,
    DeploymentFilter,
    DeploymentFlowRunCreate,
    DeploymentScheduleCreate,
    DeploymentUpdate,
    WorkPoolCreate,
    WorkPoolUpdate,
    WorkQueueCreate,
    WorkQueueUpdate,
)
from conveyor.schemas.schedules import CronSchedule
from conveyor.schemas.work_pools import WorkPoolType
from conveyor.settings import Settings

pytestmark = pytest.mark.anyio


async def test_pools_queues_workers_and_deployments_round_trip(tmp_path: Path) -> None:
    client = await embedded_client(Settings(home=tmp_path))
    try:
        pool = await client.create_work_pool(
            WorkPoolCreate(name="k8s", type=WorkPoolType.KUBERNETES)
        )
        assert (await client.read_work_pool("k8s")) == pool
        assert [p.name for p in await client.filter_work_pools()] == ["k8s"]
        limited = await client.update_work_pool("k8s", WorkPoolUpdate(concurrency_limit=4))
        assert (limited.concurrency_limit, limited.paused) == (4, False)

        queue = await client.create_work_queue("k8s", WorkQueueCreate(name="gpu"))
        assert queue.priority == 2
        paused = await client.update_work_queue("k8s", "gpu", WorkQueueUpdate(paused=True))
        assert (paused.paused, paused.priority) == (True, 2)
        names = [q.name for q in await client.filter_work_queues("k8s")]
        assert names == ["default", "gpu"]

        worker = await client.worker_heartbeat("k8s", "worker-1")
        assert worker.online
        assert [w.name for w in await client.filter_workers("k8s")] == ["worker-1"]

        hourly = DeploymentScheduleCreate(schedule=CronSchedule(cron="0 * * * *"))
        deployment = await client.deploy(
            DeploymentCreate(
                flow_name="etl",
                name="nightly",
                entrypoint="flows.py:etl",
                work_pool_name="k8s",
                work_queue_name="gpu",
                job_variables={"image": "me/etl:1"},
                schedules=[hourly],
            )
        )
        assert deployment.work_queue_name == "gpu"
        assert await client.read_deployment(deployment.id) == deployment
        assert await client.read_deployment_by_name("etl", "nightly") == deployment
        found = await client.filter_deployments(DeploymentFilter(work_pool_name=["k8s"]))
        assert [d.id for d in found] == [deployment.id]

        # Only the fields given change; a schedule keeps its kind through the PATCH.
        other = DeploymentScheduleCreate(schedule=CronSchedule(cron="0 6 * * *"), active=False)
        updated = await client.update_deployment(
            deployment.id, DeploymentUpdate(paused=True, schedules=[other])
        )
        assert updated.paused
        assert updated.job_variables == {"image": "me/etl:1"}
        assert [(s.schedule, s.active) for s in updated.schedules] == [(other.schedule, False)]

        run = await client.create_flow_run_from_deployment(
            deployment.id, DeploymentFlowRunCreate(idempotency_key="once")
        )
        again = await client.create_flow_run_from_deployment(
            deployment.id, DeploymentFlowRunCreate(idempotency_key="once")
        )
        assert again.id == run.id
        assert run.work_queue_id == queue.id

        with pytest.raises(ApiError) as refused:
            await client.delete_work_pool("k8s")
        assert refused.value.status == 409
        await client.delete_deployment(deployment.id)
        await client.delete_work_queue("k8s", "gpu")
        await client.delete_work_pool("k8s")
        with pytest.raises(ApiError) as missing:
            await client.read_work_pool("k8s")
        assert missing.value.status == 404
    finally:
        await client.aclose()
