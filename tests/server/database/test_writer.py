"""The SQLite writer thread: one write at a time, urgent ones first, none starved."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from conveyor.server.database.engine import Database
from conveyor.server.database.writer import URGENT_IN_A_ROW, WriterThread


def _blocked(writer: WriterThread) -> threading.Event:
    """Occupy the writer until the returned event is set, so that work queues up."""
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    writer.submit(hold)
    assert started.wait(10)
    return release


def test_urgent_work_goes_before_queued_ordinary_work() -> None:
    writer = WriterThread("test-writer")
    order: list[str] = []
    release = _blocked(writer)
    ordinary = [writer.submit(order.append, f"ordinary {i}") for i in range(3)]
    urgent = writer.submit_ordered(True, order.append, "urgent")
    release.set()
    for future in [*ordinary, urgent]:
        future.result(10)
    assert order == ["urgent", "ordinary 0", "ordinary 1", "ordinary 2"]
    writer.shutdown()


def test_ordinary_work_is_not_starved_by_a_stream_of_urgent_work() -> None:
    writer = WriterThread("test-writer")
    order: list[str] = []
    release = _blocked(writer)
    futures = [writer.submit(order.append, "ordinary")]
    futures += [writer.submit_ordered(True, order.append, "urgent") for _ in range(20)]
    release.set()
    for future in futures:
        future.result(10)
    assert order.index("ordinary") == URGENT_IN_A_ROW
    writer.shutdown()


def test_results_errors_and_keyword_arguments_reach_the_caller() -> None:
    writer = WriterThread("test-writer")
    assert writer.submit(lambda a, b=0: a + b, 1, b=2).result(10) == 3
    with pytest.raises(ZeroDivisionError):
        writer.submit_ordered(True, lambda: 1 / 0).result(10)
    writer.shutdown()


def test_shutdown_finishes_queued_work_then_refuses_more() -> None:
    writer = WriterThread("test-writer")
    release = _blocked(writer)
    queued = writer.submit(lambda: "done")
    threading.Timer(0.1, release.set).start()
    writer.shutdown(wait=True)
    assert queued.result(0) == "done"
    with pytest.raises(RuntimeError, match="shut down"):
        writer.submit(lambda: None)


def test_a_state_change_overtakes_queued_bulk_writes_on_sqlite(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'w.db'}")
    order: list[str] = []

    def write(session: Session, what: str) -> None:
        session.execute(text("CREATE TABLE IF NOT EXISTS t (what TEXT)"))
        session.execute(text("INSERT INTO t VALUES (:what)"), {"what": what})
        order.append(what)

    async def scenario() -> None:
        release = _blocked(database._writer)
        bulk = [asyncio.ensure_future(database.write(write, f"bulk {i}")) for i in range(3)]
        await asyncio.sleep(0.05)  # queued behind the blocked writer
        first = asyncio.ensure_future(database.write_first(write, "state change"))
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(*bulk, first)
        await database.dispose()

    asyncio.run(scenario())
    assert order == ["state change", "bulk 0", "bulk 1", "bulk 2"]
