"""Running a flow as a run the server already has (a deployment's run, claimed)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from conveyor import flow, task
from conveyor.client.api import ConveyorClient
from conveyor.client.transport import ApiTransport
from conveyor.engine.flow_engine import run_existing_flow_run
from conveyor.schemas.api import TaskRunFilter
from conveyor.schemas.deployments import DeploymentCreate, DeploymentFlowRunCreate, WorkPoolCreate
from conveyor.schemas.workers import WorkerClaim

T = TypeVar("T")

calls: list[int] = []


@task
def double(x: int) -> int:
    return 2 * x


@flow
def doubler(n: int) -> int:
    calls.append(n)
    return double(n) + double(1)


def _call(backend: ApiTransport, request: Callable[[ConveyorClient], Coroutine[Any, Any, T]]) -> T:
    return backend.call(request)


def _claimed_run(backend: ApiTransport, parameters: dict[str, Any]) -> uuid.UUID:
    _call(backend, lambda c: c.create_work_pool(WorkPoolCreate(name="local")))
    deployment = _call(
        backend,
        lambda c: c.deploy(
            DeploymentCreate(
                flow_name="doubler", name="d", entrypoint="x.py:doubler", work_pool_name="local"
            )
        ),
    )
    run = _call(
        backend,
        lambda c: c.create_flow_run_from_deployment(
            deployment.id, DeploymentFlowRunCreate(parameters=parameters)
        ),
    )
    claim = _call(backend, lambda c: c.claim_runs("local", WorkerClaim(worker_name="w")))
    assert [r.flow_run.id for r in claim.runs] == [run.id]
    return run.id


def _state_types(backend: ApiTransport, run_id: uuid.UUID) -> list[str]:
    states = _call(backend, lambda c: c.read_flow_run_states(run_id))
    return [s.type.value for s in states]


def test_an_existing_run_goes_pending_running_completed(backend: ApiTransport) -> None:
    run_id = _claimed_run(backend, {"n": "4"})  # coerced from the type hint
    state = run_existing_flow_run(doubler, run_id, {"n": "4"}, name="nightly-1")
    assert state is not None and state.is_completed()
    assert state.result() == 10
    assert _state_types(backend, run_id) == ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]
    task_runs = _call(backend, lambda c: c.filter_task_runs(TaskRunFilter(flow_run_id=[run_id])))
    assert len(task_runs) == 2
    assert {t.state_type.value for t in task_runs if t.state_type} == {"COMPLETED"}
    run = _call(backend, lambda c: c.read_flow_run(run_id))
    assert run.name.startswith("d-")  # the server's name stands


def test_a_run_cancelled_before_it_starts_does_not_run(backend: ApiTransport) -> None:
    run_id = _claimed_run(backend, {"n": 1})
    _call(backend, lambda c: c.cancel_flow_run(run_id))
    calls.clear()
    assert run_existing_flow_run(doubler, run_id, {"n": 1}) is None
    assert calls == []
    assert _state_types(backend, run_id)[-1] == "CANCELLED"


def test_bad_parameters_fail_the_run(backend: ApiTransport) -> None:
    run_id = _claimed_run(backend, {"n": "x"})
    state = run_existing_flow_run(doubler, run_id, {"n": "x"})
    assert state is not None and state.is_failed()
    assert _state_types(backend, run_id) == ["SCHEDULED", "PENDING", "FAILED"]
