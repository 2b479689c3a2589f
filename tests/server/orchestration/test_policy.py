"""The flow-run policy, as unit tests of ``set_flow_run_state`` over a real session.

Time-based rules get their clock through ``now=``: no test sleeps.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Awaitable, Callable

import pytest

from conveyor.schemas.api import OrchestrationResult, OrchestrationStatus
from conveyor.schemas.states import (
    Cancelled,
    Completed,
    Crashed,
    Failed,
    Paused,
    Pending,
    Retrying,
    Running,
    Scheduled,
    State,
    StateType,
)
from conveyor.server.database.engine import Database
from conveyor.server.models import flow_runs
from conveyor.server.orchestration.policy import (
    FlowRunNotFound,
    resume_flow_run,
    set_flow_run_state,
)

pytestmark = pytest.mark.anyio

NewRun = Callable[..., Awaitable[uuid.UUID]]
ACCEPT, REJECT, WAIT, ABORT = (
    OrchestrationStatus.ACCEPT,
    OrchestrationStatus.REJECT,
    OrchestrationStatus.WAIT,
    OrchestrationStatus.ABORT,
)
T0 = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)


async def propose(
    database: Database,
    run_id: uuid.UUID,
    state: State,
    *,
    force: bool = False,
    now: datetime.datetime | None = None,
    transition_id: uuid.UUID | None = None,
) -> OrchestrationResult:
    state.state_details.transition_id = transition_id or uuid.uuid4()
    result = await database.write(set_flow_run_state, run_id, state, force=force, now=now)
    # The answer always says what happened and why.
    assert result.reason, result
    return result


async def history(database: Database, run_id: uuid.UUID) -> list[tuple[StateType, str]]:
    states = await database.read(flow_runs.read_states, run_id)
    return [(StateType(s.type), s.name) for s in states]


async def current(database: Database, run_id: uuid.UUID) -> tuple[str | None, str | None, int]:
    run = await database.read(flow_runs.read_flow_run, run_id)
    assert run is not None
    return run.state_type, run.state_name, run.run_count


async def test_accept_records_the_state(database: Database, new_run: NewRun) -> None:
    run_id = await new_run()
    result = await propose(database, run_id, Running())
    assert result.status is ACCEPT
    assert result.state is not None
    assert result.state.type is StateType.RUNNING
    assert result.delay_seconds is None
    assert "Pending" in (result.reason or "")
    assert "Running" in (result.reason or "")
    assert await current(database, run_id) == ("RUNNING", "Running", 1)
    assert await history(database, run_id) == [
        (StateType.PENDING, "Pending"),
        (StateType.RUNNING, "Running"),
    ]


async def test_a_repeated_transition_id_returns_the_first_state_and_writes_nothing(
    database: Database, new_run: NewRun
) -> None:
    run_id = await new_run()
    transition = uuid.uuid4()
    first = await propose(database, run_id, Running(), transition_id=transition)
    assert first.status is ACCEPT
    await propose(database, run_id, Completed())

    # The retried request arrives after the run moved on: it is answered, not re-judged.
    again = await propose(database, run_id, Running(), transition_id=transition)
    assert again.status is ACCEPT
    assert again.state is not None
    assert first.state is not None
    assert again.state.type is StateType.RUNNING
    assert again.state.timestamp == first.state.timestamp
    assert again.state.state_details.transition_id == transition
    assert "Repeated" in (again.reason or "")
    assert await current(database, run_id) == ("COMPLETED", "Completed", 1)
    assert len(await history(database, run_id)) == 3


async def test_a_repeated_rejected_proposal_is_answered_with_its_replacement(
    database: Database, new_run: NewRun
) -> None:
    run_id = await new_run(retries=1, retry_delay_seconds=10)
    await propose(database, run_id, Running())
    transition = uuid.uuid4()
    first = await propose(database, run_id, Failed(), transition_id=transition, now=T0)
    again = await propose(database, run_id, Failed(), transition_id=transition, now=T0)
    assert first.status is again.status is REJECT
    assert first.state is not None
    assert again.state is not None
    assert (again.state.type, again.state.name) == (StateType.SCHEDULED, "AwaitingRetry")
    assert again.state.state_details.scheduled_time == first.state.state_details.scheduled_time
    assert len(await history(database, run_id)) == 3


@pytest.mark.parametrize("final", [Completed, Failed, Cancelled, Crashed])
async def test_terminal_states_are_protected(
    database: Database, new_run: NewRun, final: Callable[[], State]
) -> None:
    run_id = await new_run()
    await propose(database, run_id, Running())
    ended = final()
    assert (await propose(database, run_id, ended)).status is ACCEPT
    before = await history(database, run_id)

    for proposal in (Running(), Pending(), Completed(), Scheduled(T0)):
        result = await propose(database, run_id, proposal)
        assert result.status is ABORT
        assert result.state is not None
        assert result.state.type is ended.type
        assert f"already {ended.name} ({ended.type.value})" in (result.reason or "")
    assert await history(database, run_id) == before


async def test_force_overrides_the_rules(database: Database, new_run: NewRun) -> None:
    run_id = await new_run()
    await propose(database, run_id, Running())
    await propose(database, run_id, Completed())
    result = await propose(database, run_id, Running(name="Rerun"), force=True)
    assert result.status is ACCEPT
    assert "Forced" in (result.reason or "")
    assert await current(database, run_id) == ("RUNNING", "Rerun", 2)
    # Forcing skips the retry rule too: Failed is recorded although retries remain.
    retried = await new_run(retries=3)
    await propose(database, retried, Running())
    assert (await propose(database, retried, Failed(), force=True)).status is ACCEPT
    assert (await current(database, retried))[0] == "FAILED"


async def test_failed_with_retries_left_becomes_awaiting_retry(
    database: Database, new_run: NewRun
) -> None:
    run_id = await new_run(retries=2, retry_delay_seconds=30)
    await propose(database, run_id, Running(), now=T0)

    attempt = 1
    now = T0
    while True:
        result = await propose(database, run_id, Failed(message=f"boom {attempt}"), now=now)
        if attempt > 2:
            break
        assert result.status is REJECT
        assert result.state is not None
        assert (result.state.type, result.state.name) == (StateType.SCHEDULED, "AwaitingRetry")
        due = now + datetime.timedelta(seconds=30)
        assert result.state.state_details.scheduled_time == due
        assert result.state.message == f"boom {attempt}"
        assert f"Retry {attempt} of 2" in (result.reason or "")
        assert await current(database, run_id) == ("SCHEDULED", "AwaitingRetry", attempt)
        # Too early to start again: WAIT for the rest of the delay.
        early = await propose(database, run_id, Retrying(), now=now + datetime.timedelta(seconds=5))
        assert early.status is WAIT
        assert early.delay_seconds == pytest.approx(25)
        now = due
        assert (await propose(database, run_id, Retrying(), now=now)).status is ACCEPT
        attempt += 1

    # The retries are used up: Failed is final.
    assert result.status is ACCEPT
    assert await current(database, run_id) == ("FAILED", "Failed", 3)
    assert [name for _, name in await history(database, run_id)] == [
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "AwaitingRetry",
        "Retrying",
        "Failed",
    ]


async def test_failed_without_retries_is_accepted(database: Database, new_run: NewRun) -> None:
    run_id = await new_run()
    await propose(database, run_id, Running())
    assert (await propose(database, run_id, Failed())).status is ACCEPT
    # Retries only apply to a running run: Pending -> Failed is final at once.
    other = await new_run(retries=5)
    assert (await propose(database, other, Failed())).status is ACCEPT


@pytest.mark.parametrize("target", [Pending, Running])
async def test_a_run_scheduled_in_the_future_must_wait(
    database: Database, new_run: NewRun, target: Callable[[], State]
) -> None:
    when = T0 + datetime.timedelta(minutes=10)
    run_id = await new_run(state=Scheduled(when))
    before = await history(database, run_id)

    result = await propose(database, run_id, target(), now=T0)
    assert result.status is WAIT
    assert result.delay_seconds == pytest.approx(600)
    assert result.state is not None
    assert result.state.type is StateType.SCHEDULED
    assert when.isoformat() in (result.reason or "")
    later = await propose(database, run_id, target(), now=when - datetime.timedelta(seconds=90))
    assert later.delay_seconds == pytest.approx(90)
    assert await history(database, run_id) == before

    # Within the clock-skew tolerance, or once due, the run may start.
    on_time = await propose(database, run_id, target(), now=when - datetime.timedelta(seconds=0.5))
    assert on_time.status is ACCEPT
    assert (await current(database, run_id))[0] == target().type.value


async def test_a_run_scheduled_in_the_past_starts_at_once(
    database: Database, new_run: NewRun
) -> None:
    run_id = await new_run(state=Scheduled(T0 - datetime.timedelta(hours=1)))
    assert (await propose(database, run_id, Pending(), now=T0)).status is ACCEPT
    assert (await propose(database, run_id, Running(), now=T0)).status is ACCEPT


@pytest.mark.parametrize(
    ("start", "proposal"),
    [
        (Pending, Pending),  # a second worker claiming a claimed run
        (Running, Pending),
        (Running, Running),  # a second client starting a started run
    ],
)
async def test_a_claimed_or_started_run_cannot_be_claimed_or_started_again(
    database: Database,
    new_run: NewRun,
    start: Callable[[], State],
    proposal: Callable[[], State],
) -> None:
    run_id = await new_run(state=start())
    result = await propose(database, run_id, proposal())
    assert result.status is ABORT
    assert f"already {start().name}" in (result.reason or "")
    assert len(await history(database, run_id)) == 1


async def test_ordinary_moves_are_accepted(database: Database, new_run: NewRun) -> None:
    run_id = await new_run(state=Scheduled(T0))
    for state in (Pending(), Running(), Paused()):
        assert (await propose(database, run_id, state, now=T0)).status is ACCEPT, state
    # A paused run goes on only through a resume, which is the same attempt going on.
    resumed = await database.write(resume_flow_run, run_id, None, now=T0)
    assert resumed.status is ACCEPT and resumed.state is not None
    assert resumed.state.name == "Resumed"
    assert (await propose(database, run_id, Completed(), now=T0)).status is ACCEPT
    assert await current(database, run_id) == ("COMPLETED", "Completed", 1)


async def test_an_unknown_run_raises_not_found(database: Database) -> None:
    with pytest.raises(FlowRunNotFound):
        await propose(database, uuid.uuid4(), Running())
