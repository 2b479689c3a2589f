"""Run logs, log_prints, tags, and what the recorder receives (and when)."""

from __future__ import annotations

import logging
import sys
import uuid

import pytest

from conveyor import flow, get_run_logger, tags, task
from conveyor.client import MemoryTransport, Recorder
from conveyor.engine import runtime
from conveyor.engine.context import current_tags
from conveyor.exceptions import NotInFlowError
from conveyor.schemas.logs import LogRecordCreate


def logs_with(transport: MemoryTransport, text: str) -> list[LogRecordCreate]:
    return [log for log in transport.logs if text in log.message]


# -- get_run_logger --------------------------------------------------------------------
def test_task_and_flow_logs_carry_their_run_ids(transport: MemoryTransport) -> None:
    @task
    def step() -> None:
        get_run_logger().warning("from the task")

    @flow
    def pipeline() -> None:
        get_run_logger().info("from the flow")
        step()

    pipeline()
    (flow_run_id,) = transport.flow_runs
    (task_run_id,) = transport.task_runs
    (task_log,) = logs_with(transport, "from the task")
    assert task_log.flow_run_id == flow_run_id
    assert task_log.task_run_id == task_run_id
    assert task_log.level == logging.WARNING
    assert task_log.name == "conveyor.task_runs"
    (flow_log,) = logs_with(transport, "from the flow")
    assert flow_log.flow_run_id == flow_run_id
    assert flow_log.task_run_id is None
    assert flow_log.level == logging.INFO


def test_logs_of_submitted_tasks_name_their_own_task_runs(transport: MemoryTransport) -> None:
    @task
    def step(i: int) -> None:
        get_run_logger().info("step %d", i)

    @flow
    def pipeline() -> None:
        for future in [step.submit(i) for i in range(5)]:
            future.wait()

    pipeline()
    by_name = {run.name: run.id for run in transport.task_runs.values()}
    for i in range(5):
        (log,) = logs_with(transport, f"step {i}")
        assert log.task_run_id == by_name[f"step-{i}"]


def test_extra_fields_are_kept_and_run_ids_added(conveyor_logs: pytest.LogCaptureFixture) -> None:
    @flow
    def pipeline() -> None:
        get_run_logger().info("with extra", extra={"custom": 7})

    pipeline()
    (record,) = [r for r in conveyor_logs.records if r.getMessage() == "with extra"]
    assert record.__dict__["custom"] == 7
    assert isinstance(record.__dict__["flow_run_id"], uuid.UUID)


def test_get_run_logger_outside_a_run_raises_not_in_flow() -> None:
    with pytest.raises(NotInFlowError, match="get_run_logger"):
        get_run_logger()


def test_exceptions_logged_in_a_task_include_the_traceback(transport: MemoryTransport) -> None:
    @task
    def step() -> None:
        try:
            raise ValueError("inner detail")
        except ValueError:
            get_run_logger().exception("it failed")

    @flow
    def pipeline() -> None:
        step()

    pipeline()
    (log,) = logs_with(transport, "it failed")
    assert "Traceback" in log.message
    assert "ValueError: inner detail" in log.message


def test_the_engine_logs_the_start_and_end_of_runs(transport: MemoryTransport) -> None:
    @task
    def broken() -> None:
        raise RuntimeError("task broke")

    @flow
    def pipeline() -> None:
        broken()

    pipeline(return_state=True)
    (flow_run_id,) = transport.flow_runs
    (task_run_id,) = transport.task_runs
    (begin,) = logs_with(transport, "Beginning flow run")
    assert begin.flow_run_id == flow_run_id
    finished = logs_with(transport, "Finished in state Failed")
    assert {(log.flow_run_id, log.task_run_id) for log in finished} == {
        (flow_run_id, task_run_id),
        (flow_run_id, None),
    }
    (task_end,) = [log for log in finished if log.task_run_id == task_run_id]
    assert task_end.level == logging.ERROR
    assert "RuntimeError: task broke" in task_end.message


# -- log_prints ------------------------------------------------------------------------
def test_log_prints_turns_prints_into_log_records(
    transport: MemoryTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    @task
    def step() -> None:
        print("printed in task", 1)

    @flow(log_prints=True)
    def pipeline() -> None:
        print("printed in flow")
        step()

    pipeline()
    (task_run_id,) = transport.task_runs
    (in_flow,) = logs_with(transport, "printed in flow")
    assert in_flow.task_run_id is None
    assert in_flow.level == logging.INFO
    (in_task,) = logs_with(transport, "printed in task 1")
    assert in_task.task_run_id == task_run_id
    assert "printed in" not in capsys.readouterr().out


def test_without_log_prints_print_goes_to_stdout(
    transport: MemoryTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    @flow
    def pipeline() -> None:
        print("plain print")

    pipeline()
    assert "plain print" in capsys.readouterr().out
    assert logs_with(transport, "plain print") == []


def test_task_log_prints_false_overrides_the_flow(
    transport: MemoryTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    @task(log_prints=False)
    def quiet() -> None:
        print("not logged")

    @flow(log_prints=True)
    def pipeline() -> None:
        quiet()

    pipeline()
    assert logs_with(transport, "not logged") == []
    assert "not logged" in capsys.readouterr().out


def test_task_log_prints_true_in_a_flow_without_it(
    transport: MemoryTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    @task(log_prints=True)
    def loud() -> None:
        print("logged from task")

    @flow
    def pipeline() -> None:
        print("flow print")
        loud()

    pipeline()
    assert len(logs_with(transport, "logged from task")) == 1
    assert logs_with(transport, "flow print") == []
    out = capsys.readouterr().out
    assert "flow print" in out
    assert "logged from task" not in out


def test_prints_to_stderr_or_files_are_never_captured(
    transport: MemoryTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    @flow(log_prints=True)
    def pipeline() -> None:
        print("to stderr", file=sys.stderr)

    pipeline()
    assert logs_with(transport, "to stderr") == []
    assert "to stderr" in capsys.readouterr().err


# -- tags ------------------------------------------------------------------------------
def test_tags_context_manager_tags_flow_runs_and_task_runs(transport: MemoryTransport) -> None:
    @task(tags=["own"])
    def step() -> None:
        return None

    @flow
    def pipeline() -> None:
        step()
        with tags("inner"):
            step()

    with tags("team-a", "nightly") as active:
        assert active == frozenset({"team-a", "nightly"})
        pipeline()

    (flow_run,) = transport.flow_runs.values()
    assert flow_run.tags == ["nightly", "team-a"]
    by_name = {run.name: run for run in transport.task_runs.values()}
    assert set(by_name["step-0"].tags) == {"own", "team-a", "nightly"}
    assert set(by_name["step-1"].tags) == {"own", "team-a", "nightly", "inner"}


def test_tags_nest_and_unwind() -> None:
    with tags("a"):
        with tags("b"):
            assert current_tags() == {"a", "b"}
        assert current_tags() == {"a"}
    assert current_tags() == frozenset()


def test_tags_must_be_strings() -> None:
    with pytest.raises(TypeError, match="strings"), tags("ok", 3):  # type: ignore[arg-type]
        pass


def test_tags_reach_submitted_tasks(transport: MemoryTransport) -> None:
    @task
    def step() -> None:
        return None

    @flow
    def pipeline() -> None:
        with tags("submitted"):
            step.submit().wait()

    pipeline()
    (run,) = transport.task_runs.values()
    assert "submitted" in run.tags


# -- what the recorder receives --------------------------------------------------------
def test_every_task_run_state_arrives_in_order(transport: MemoryTransport) -> None:
    @task(retries=1)
    def step(i: int) -> int:
        if i % 3 == 0 and step_attempts.setdefault(i, 0) == 0:
            step_attempts[i] = 1
            raise ValueError("first attempt")
        return i

    step_attempts: dict[int, int] = {}

    @flow
    def pipeline() -> list[int]:
        return [f.result() for f in [step.submit(i) for i in range(12)]]

    assert pipeline() == list(range(12))
    assert len(transport.task_runs) == 12
    for run in transport.task_runs.values():
        records = transport.task_run_states[run.id]
        assert [r.seq for r in records] == list(range(1, len(records) + 1))
        names = [r.state.name for r in records]
        if int(run.name.split("-")[1]) % 3 == 0:
            assert names == [
                "Pending",
                "Running",
                "AwaitingRetry",
                "Retrying",
                "Completed",
            ]
        else:
            assert names == ["Pending", "Running", "Completed"]


def test_the_end_of_a_flow_flushes_everything_before_the_call_returns() -> None:
    memory = MemoryTransport()
    # A flush interval far longer than the test: only the end-of-flow flush can deliver.
    recorder = Recorder(memory, flush_interval=60)

    @task
    def step(i: int) -> int:
        get_run_logger().info("working on %d", i)
        return i

    @flow
    def pipeline() -> int:
        return sum(step.submit(i).result() for i in range(20))

    try:
        with runtime.use_recorder(recorder):
            assert pipeline() == sum(range(20))
            # Checked before leaving use_recorder, whose exit would flush again.
            assert len(memory.task_runs) == 20
            assert all(
                [r.state.name for r in memory.task_run_states[run_id]]
                == ["Pending", "Running", "Completed"]
                for run_id in memory.task_runs
            )
            assert len(logs_with(memory, "working on")) == 20
            assert len(logs_with(memory, "Finished in state")) == 1
            assert memory.batches >= 1
    finally:
        recorder.close()


def test_a_flow_run_is_recorded_with_the_proposal_that_ends_it(
    transport: MemoryTransport,
) -> None:
    seen: list[int] = []

    @flow
    def pipeline() -> None:
        seen.append(len(transport.flow_runs))

    pipeline()
    # The run started without waiting on the backend: its creation (Running), its logs
    # and its final state travelled in one request, before the call returned.
    assert seen == [0]
    (states,) = transport.flow_run_states.values()
    assert [s.name for s in states] == ["Running", "Completed"]
    assert transport.batches == 1
    assert len(logs_with(transport, "Finished in state")) == 1
