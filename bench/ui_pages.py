"""How long the server takes to render each web UI page over a big history.

Seeds a SQLite database with 100,000 flow runs and 1,000,000 task runs (bulk inserts,
see ``_ui_seed.py``), then requests each page in-process (``httpx.ASGITransport``: the
server's own time, no network) and prints one JSON line: per page the median and the
worst of ``--repeat`` requests, in milliseconds, and whether every page met the budget.

    python bench/ui_pages.py                      # 100k runs, 10 task runs each
    python bench/ui_pages.py --flow-runs 10000    # quicker
    python bench/ui_pages.py --database /tmp/ui.db --reuse   # seed once, time again
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from _ui_seed import seed
from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.server.app import create_app
from conveyor.server.database import orm
from conveyor.server.database.engine import Database
from conveyor.server.database.migrate import upgrade
from conveyor.settings import Settings

BUDGET_MS = 300.0


def _pages(run_id: uuid.UUID) -> dict[str, str]:
    return {
        "dashboard 24h": "/",
        "dashboard 30d": "/?range=30d",
        "dashboard fragment": "/fragments/dashboard?range=7d",
        "flow runs": "/flow-runs",
        "flow runs failed": "/flow-runs?state=FAILED",
        "flow runs by flow": "/flow-runs?flow=flow-7",
        "flow runs by tag": "/flow-runs?tag=nightly&range=7d",
        "flow runs page 20": "/flow-runs?page=20",
        "flow runs fragment": "/fragments/flow-runs?state=COMPLETED",
        "flow run": f"/flow-runs/{run_id}",
        "flow run log search": f"/flow-runs/{run_id}?level=ERROR&q=finished",
        "flow run fragment": f"/fragments/flow-runs/{run_id}",
        "log tail": f"/fragments/flow-runs/{run_id}/logs?after=0",
        "deployments": "/deployments",
        "work pools": "/work-pools",
        "flows": "/flows",
        "concurrency limits": "/concurrency-limits",
        "variables": "/variables",
        "artifacts": "/artifacts",
    }


def _newest_completed(session: Session) -> uuid.UUID:
    query = (
        select(orm.FlowRun.id)
        .where(orm.FlowRun.state_type == "COMPLETED")
        .order_by(orm.FlowRun.created.desc())
        .limit(1)
    )
    return session.execute(query).scalar_one()


async def _prepare(url: str, flow_runs: int, tasks: int, reuse: bool) -> tuple[uuid.UUID, float]:
    database = Database(url)
    try:
        await upgrade(database)
        started = time.perf_counter()
        if not reuse:
            await seed(database, flow_runs, tasks)
        run_id = await database.read(_newest_completed)
        return run_id, time.perf_counter() - started
    finally:
        await database.dispose()


async def _time_pages(url: str, run_id: uuid.UUID, repeat: int) -> dict[str, dict[str, float]]:
    app = create_app(Settings(home=Path(tempfile.gettempdir()), database_url=url), migrate=False)
    results: dict[str, dict[str, float]] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name, path in _pages(run_id).items():
                times = []
                for _ in range(repeat + 1):  # the first warms caches and is not counted
                    started = time.perf_counter()
                    response = await client.get(path)
                    times.append((time.perf_counter() - started) * 1000)
                    if response.status_code not in (200, 204):
                        sys.exit(f"{path} answered {response.status_code}: {response.text[:500]}")
                counted = times[1:]
                results[name] = {
                    "median_ms": round(statistics.median(counted), 1),
                    "max_ms": round(max(counted), 1),
                }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flow-runs", type=int, default=100_000)
    parser.add_argument("--tasks-per-run", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database", type=Path, help="SQLite file (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true", help="time an already seeded --database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = args.database or Path(scratch) / "ui-bench.db"
        url = f"sqlite:///{path}"
        run_id, seeding = asyncio.run(_prepare(url, args.flow_runs, args.tasks_per_run, args.reuse))
        pages = asyncio.run(_time_pages(url, run_id, args.repeat))
    worst = max(page["max_ms"] for page in pages.values())
    print(
        json.dumps(
            {
                "bench": "ui_pages",
                "flow_runs": args.flow_runs,
                "task_runs": args.flow_runs * args.tasks_per_run,
                "seed_seconds": round(seeding, 1),
                "reused_database": args.reuse,
                "budget_ms": BUDGET_MS,
                "all_within_budget": worst <= BUDGET_MS,
                "pages": pages,
            }
        )
    )


if __name__ == "__main__":
    main()
