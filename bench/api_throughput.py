"""Flow-run state proposals per second from concurrent clients; prints one JSON line.

    python bench/api_throughput.py [--clients 8] [--seconds 5] [--postgres URL]

For each database (SQLite in a fresh CONVEYOR_HOME, and PostgreSQL in a database made
for the run and dropped afterwards) it starts ``conveyor server start`` on a free
loopback port, then runs ``--clients`` concurrent clients for ``--seconds``: each
creates flow runs and proposes Running then Completed for them. Reported: accepted
proposals per second (creations not counted) and the median proposal latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid

from _server import running_server

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def _load(api: str, clients: int, seconds: float) -> dict[str, float]:
    from conveyor.client.api import ConveyorClient
    from conveyor.schemas.api import FlowRunCreate, OrchestrationStatus
    from conveyor.schemas.states import Completed, Running

    latencies: list[float] = []
    accepted = 0
    deadline = time.monotonic() + seconds

    async def one_client(client: ConveyorClient) -> None:
        nonlocal accepted
        while time.monotonic() < deadline:
            run_id = uuid.uuid4()
            await client.create_flow_run(FlowRunCreate(id=run_id, flow_name="bench", name="b"))
            for state in (Running(), Completed()):
                start = time.perf_counter()
                result = await client.set_flow_run_state(run_id, state)
                latencies.append(time.perf_counter() - start)
                assert result.status is OrchestrationStatus.ACCEPT, result
                accepted += 1

    pool = [ConveyorClient(api) for _ in range(clients)]
    try:
        await pool[0].health()
        started = time.monotonic()
        await asyncio.gather(*(one_client(c) for c in pool))
        elapsed = time.monotonic() - started
    finally:
        for client in pool:
            await client.aclose()
    return {
        "proposals_per_second": round(accepted / elapsed, 1),
        "median_latency_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_latency_ms": round(statistics.quantiles(latencies, n=100)[98] * 1000, 2),
    }


def _serve(env: dict[str, str], clients: int, seconds: float) -> dict[str, float]:
    with running_server(env) as api:
        return asyncio.run(_load(api, clients, seconds))


async def _postgres_database(admin_url: str, name: str, create: bool) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(admin_url)
    connection = await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        if create:
            await connection.execute(f'CREATE DATABASE "{name}"')
        else:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--postgres", default=os.environ.get("CONVEYOR_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    )
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    result: dict[str, object] = {"benchmark": "api_throughput", "clients": args.clients}
    home = tempfile.mkdtemp(prefix="conveyor-bench-")
    result["sqlite"] = _serve({**base, "CONVEYOR_HOME": home}, args.clients, args.seconds)
    name = f"conveyor_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_postgres_database(args.postgres, name, create=True))
    try:
        from sqlalchemy.engine import make_url

        url = make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
        env = {**base, "CONVEYOR_HOME": home, "CONVEYOR_DATABASE_URL": url}
        result["postgresql"] = _serve(env, args.clients, args.seconds)
    finally:
        asyncio.run(_postgres_database(args.postgres, name, create=False))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
