"""The loop every service runs: passes every interval, survives a failing pass, stops
promptly. Driven by events, never by sleeping for a guessed time."""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.server.database.engine import Database
from conveyor.server.services import base
from conveyor.server.services.base import LoopService

pytestmark = pytest.mark.anyio

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
WAIT = 10.0  # generous: only a broken loop takes this long


class Scripted(LoopService):
    """Each pass returns (or raises) the next scripted outcome, then 0 forever."""

    name = "scripted"
    interval = 3600.0

    def __init__(self, database: Database, outcomes: list[int | Exception], **kw: Any) -> None:
        super().__init__(database, clock=lambda: T0, **kw)
        self.outcomes = outcomes
        self.passes: list[datetime.datetime] = []
        self.passed = asyncio.Condition()
        self.hang = False

    async def run_once(self, now: datetime.datetime) -> int:
        async with self.passed:
            self.passes.append(now)
            self.passed.notify_all()
        if self.hang:
            await asyncio.Event().wait()
        outcome = self.outcomes.pop(0) if self.outcomes else 0
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def wait_for_passes(self, count: int) -> None:
        async with self.passed:
            await asyncio.wait_for(self.passed.wait_for(lambda: len(self.passes) >= count), WAIT)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'unused.db'}")  # the scripted service never uses it
    yield db
    await db.dispose()


async def test_a_failing_pass_is_logged_and_the_loop_goes_on(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    service = Scripted(database, [RuntimeError("database went away"), 0], interval=0.01)
    with caplog.at_level(logging.ERROR, logger="conveyor.server.services"):
        service.start()
        await service.wait_for_passes(3)
        await service.stop()
    assert service.passes[0] == T0  # the injected clock
    [record] = [r for r in caplog.records if r.exc_info]
    assert "scripted" in record.getMessage()
    assert record.exc_info is not None and "database went away" in str(record.exc_info[1])


async def test_stop_is_prompt_between_passes(database: Database) -> None:
    service = Scripted(database, [])
    service.start()
    await service.wait_for_passes(1)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(service.stop(), WAIT)
    assert asyncio.get_running_loop().time() - started < 1.0  # not the hour's interval
    assert not service.running
    assert len(service.passes) == 1


async def test_a_full_batch_is_followed_at_once_by_another_pass(database: Database) -> None:
    service = Scripted(database, [2, 2, 1], batch_size=2)
    service.start()
    await service.wait_for_passes(3)  # the interval is an hour: only full batches go on
    await service.stop()
    assert len(service.passes) == 3


async def test_stop_cancels_a_pass_that_overruns_the_grace_period(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "STOP_GRACE_SECONDS", 0.01)
    service = Scripted(database, [])
    service.hang = True
    service.start()
    await service.wait_for_passes(1)
    await asyncio.wait_for(service.stop(), WAIT)
    assert not service.running
