"""Pausing a flow run in this process and resuming it from another thread, against the
embedded backend (a real database). The end-to-end tests with a server and a worker are in
tests/server/test_pauses_end_to_end.py."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pydantic
import pytest

from conveyor import flow, pause_flow_run, resume_flow_run, suspend_flow_run, task
from conveyor.client.api import ApiError
from conveyor.client.transport import ApiTransport
from conveyor.engine import cancellation, pauses
from conveyor.engine.context import get_run_context
from conveyor.exceptions import CancelledRun, PausedRunTimeout, PauseError
from conveyor.schemas.states import StateType


class Approval(pydantic.BaseModel):
    approved: bool
    note: str = ""


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pauses, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(cancellation, "POLL_SECONDS", 0.05)


def when_paused(
    backend: ApiTransport, ids: list[uuid.UUID], action: Callable[[uuid.UUID], Any]
) -> threading.Thread:
    """Run ``action(run_id)`` in a thread once the run is Paused; its result (or error)
    lands in ``thread.outcome``."""

    def act() -> None:
        deadline = time.monotonic() + 20
        while True:
            if ids:
                try:
                    run = backend.call(lambda client: client.read_flow_run(ids[0]))
                except ApiError:
                    run = None
                if run is not None and run.state_type is StateType.PAUSED:
                    break
            assert time.monotonic() < deadline, "the run never paused"
            time.sleep(0.02)
        try:
            thread.outcome = action(ids[0])  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - handed to the test
            thread.outcome = exc  # type: ignore[attr-defined]

    thread = threading.Thread(target=act)
    thread.start()
    return thread


def test_a_paused_flow_waits_and_completes_when_resumed(backend: ApiTransport) -> None:
    ids: list[uuid.UUID] = []
    steps: list[str] = []

    @task
    def step(name: str) -> None:
        steps.append(name)

    @flow
    def approval() -> str:
        step("before")
        ids.append(get_run_context().flow_run.id)  # type: ignore[union-attr]
        assert pause_flow_run(timeout=30) is None
        step("after")
        return "done"

    resumed_at: list[float] = []

    def resume(run_id: uuid.UUID) -> Any:
        time.sleep(0.3)  # the flow is really waiting
        assert steps == ["before"]
        resumed_at.append(time.monotonic())
        return resume_flow_run(run_id)

    resumer = when_paused(backend, ids, resume)
    state = approval(return_state=True)
    finished = time.monotonic()
    resumer.join()
    assert state.is_completed() and state.result() == "done"
    assert steps == ["before", "after"]
    assert finished - resumed_at[0] < 1.0  # reacted promptly
    states = backend.call(lambda client: client.read_flow_run_states(ids[0]))
    assert [(s.type.value, s.name) for s in states] == [
        ("RUNNING", "Running"),
        ("PAUSED", "Paused"),
        ("RUNNING", "Resumed"),
        ("COMPLETED", "Completed"),
    ]
    paused = states[1].details
    assert paused["pause_key"] == "pause-1" and paused["pause_reschedule"] is False
    assert "pause_timeout" in paused and "run_input_schema" not in paused


def test_wait_for_input_returns_the_model_and_bad_input_is_refused(
    backend: ApiTransport,
) -> None:
    ids: list[uuid.UUID] = []

    @flow
    def review() -> str:
        ids.append(get_run_context().flow_run.id)  # type: ignore[union-attr]
        answer = pause_flow_run(timeout=30, wait_for_input=Approval, key="review")
        assert isinstance(answer, Approval)
        return f"{answer.approved}:{answer.note}"

    def resume(run_id: uuid.UUID) -> Any:
        with pytest.raises(ApiError) as bad:
            resume_flow_run(run_id, {"approved": "perhaps"})
        run = backend.call(lambda client: client.read_flow_run(run_id))
        assert run.state_type is StateType.PAUSED  # still waiting
        resume_flow_run(run_id, {"approved": True, "note": "ship it"})
        return bad.value

    resumer = when_paused(backend, ids, resume)
    assert review() == "True:ship it"
    resumer.join()
    error = resumer.outcome  # type: ignore[attr-defined]
    assert isinstance(error, ApiError) and error.status == 422
    assert "run_input.approved" in error.detail
    states = backend.call(lambda client: client.read_flow_run_states(ids[0]))
    assert states[1].details["pause_key"] == "review"
    assert states[1].details["run_input_schema"] == Approval.model_json_schema()


def test_a_pause_nobody_resumes_fails_the_run_and_raises(backend: ApiTransport) -> None:
    ids: list[uuid.UUID] = []

    @flow(retries=2)  # an expired pause is not retried
    def forgotten() -> None:
        ids.append(get_run_context().flow_run.id)  # type: ignore[union-attr]
        pause_flow_run(timeout=0.5)

    started = time.monotonic()
    with pytest.raises(PausedRunTimeout, match="not resumed before its pause expired"):
        forgotten()
    assert time.monotonic() - started < 5
    run = backend.call(lambda client: client.read_flow_run(ids[0]))
    assert (run.state_type, run.run_count) == (StateType.FAILED, 1)
    with pytest.raises(ApiError) as refused:
        resume_flow_run(ids[0])
    assert refused.value.status == 409


def test_catching_the_timeout_does_not_save_the_run(backend: ApiTransport) -> None:
    @flow
    def stubborn() -> str:
        try:
            pause_flow_run(timeout=0.3)
        except PausedRunTimeout:
            return "carried on"
        return "resumed"

    state = stubborn(return_state=True)
    assert state.is_failed()
    with pytest.raises(PausedRunTimeout):
        state.result()


def test_a_paused_run_can_be_cancelled(backend: ApiTransport) -> None:
    ids: list[uuid.UUID] = []

    @flow
    def waits() -> None:
        ids.append(get_run_context().flow_run.id)  # type: ignore[union-attr]
        pause_flow_run(timeout=30)

    canceller = when_paused(
        backend, ids, lambda run_id: backend.call(lambda client: client.cancel_flow_run(run_id))
    )
    started = time.monotonic()
    with pytest.raises(CancelledRun):
        waits()
    canceller.join()
    assert time.monotonic() - started < 10
    run = backend.call(lambda client: client.read_flow_run(ids[0]))
    assert run.state_type is StateType.CANCELLED


def test_resuming_a_run_that_is_not_paused_is_a_conflict(backend: ApiTransport) -> None:
    @flow
    def quick() -> uuid.UUID:
        return get_run_context().flow_run.id  # type: ignore[union-attr]

    run_id = quick()
    with pytest.raises(ApiError) as refused:
        resume_flow_run(run_id)
    assert refused.value.status == 409
    assert "not paused" in refused.value.detail
    with pytest.raises(ApiError) as missing:
        resume_flow_run(uuid.uuid4())
    assert missing.value.status == 404


def test_suspending_a_run_without_a_deployment_is_refused(backend: ApiTransport) -> None:
    @flow
    def local() -> None:
        suspend_flow_run(timeout=60)

    with pytest.raises(PauseError, match="this run has no deployment"):
        local()


def test_pausing_outside_a_flow_or_in_a_task_or_without_a_backend_is_refused() -> None:
    with pytest.raises(PauseError, match="must be called inside a flow"):
        pause_flow_run()

    @task
    def in_task() -> None:
        pause_flow_run()

    @flow
    def calls_task() -> None:
        in_task()

    with pytest.raises(PauseError, match="not in a task"):
        calls_task()

    @flow
    def unrecorded() -> None:
        pause_flow_run()

    # The engine tests run with CONVEYOR_BACKEND=none: nobody could resume it.
    with pytest.raises(PauseError, match="needs a backend"):
        unrecorded()


def test_a_subflow_pauses_while_its_parent_runs(backend: ApiTransport) -> None:
    ids: list[uuid.UUID] = []

    @flow
    def child() -> int:
        ids.append(get_run_context().flow_run.id)  # type: ignore[union-attr]
        answer = pause_flow_run(timeout=30, wait_for_input=Approval)
        return 1 if answer.approved else 0

    @flow
    def parent() -> int:
        return child() + 1

    resumer = when_paused(backend, ids, lambda run_id: resume_flow_run(run_id, {"approved": True}))
    assert parent() == 2
    resumer.join()
    runs = backend.call(lambda client: client.filter_flow_runs())
    assert {run.flow_name: run.state_type for run in runs} == {
        "parent": StateType.COMPLETED,
        "child": StateType.COMPLETED,
    }


def test_an_async_flow_can_pause(backend: ApiTransport) -> None:
    import asyncio

    ids: list[uuid.UUID] = []

    @flow
    async def waits() -> str:
        ids.append(get_run_context().flow_run.id)  # type: ignore[union-attr]
        pause_flow_run(timeout=30, key="gate")  # blocks this flow's event loop meanwhile
        await asyncio.sleep(0)
        return "went on"

    resumer = when_paused(backend, ids, resume_flow_run)
    assert asyncio.run(waits()) == "went on"
    resumer.join()


def test_a_paused_run_ended_by_someone_else_keeps_that_outcome(backend: ApiTransport) -> None:
    from conveyor.states import Crashed

    ids: list[uuid.UUID] = []

    @flow
    def waits() -> None:
        ids.append(get_run_context().flow_run.id)  # type: ignore[union-attr]
        pause_flow_run(timeout=30)

    def crash(run_id: uuid.UUID) -> Any:
        return backend.call(lambda client: client.set_flow_run_state(run_id, Crashed()))

    crasher = when_paused(backend, ids, crash)
    state = waits(return_state=True)
    crasher.join()
    assert state.is_crashed()
    with pytest.raises(PauseError, match="became Crashed while paused"):
        state.result()
