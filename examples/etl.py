"""Extract, transform, load: cached extracts, persisted results, and print() as logs.

Run it with ``python examples/etl.py``. The flow runs twice: the second run takes every
extract from the cache (the key is the task's inputs plus its source code), so it skips
the slow download. Cached and persisted results live in the result store, by default
``$CONVEYOR_HOME/storage``; the reports are under ``etl/revenue-<day>`` there.
"""

from __future__ import annotations

import datetime
import random
import time

from conveyor import INPUTS, TASK_SOURCE, flow, task

REGIONS = ("north", "south", "east", "west")

Order = tuple[str, float]  # (region, amount)


@task(
    cache_policy=INPUTS + TASK_SOURCE,
    cache_expiration=datetime.timedelta(days=1),
    retries=2,
    retry_delay_seconds=1,
)
def extract(day: datetime.date) -> list[Order]:
    """Pretend to download one day of orders: slow, so worth caching."""
    time.sleep(0.5)
    rng = random.Random(day.toordinal())
    return [(rng.choice(REGIONS), round(rng.uniform(5, 500), 2)) for _ in range(100)]


@task
def transform(orders: list[Order]) -> dict[str, float]:
    """Revenue per region."""
    revenue = dict.fromkeys(REGIONS, 0.0)
    for region, amount in orders:
        revenue[region] += amount
    return {region: round(total, 2) for region, total in revenue.items()}


@task(persist_result=True, result_serializer="json", result_storage_key="etl/revenue-{day}")
def load(day: datetime.date, revenue: dict[str, float]) -> dict[str, float]:
    """Load the report: it is the persisted result, stored under a readable key."""
    best = max(revenue, key=revenue.__getitem__)
    print(f"{day}: total {sum(revenue.values()):.2f}, best region {best}")
    return revenue


@flow(log_prints=True)
def etl(start: datetime.date = datetime.date(2024, 5, 1), days: int = 3) -> float:
    dates = [start + datetime.timedelta(days=n) for n in range(days)]
    orders = extract.map(dates)
    revenue = transform.map(orders)
    reports = load.map(dates, revenue)
    total: float = sum(sum(report.values()) for report in reports.result())
    print(f"Revenue over {days} days: {total:.2f}")
    return total


if __name__ == "__main__":
    for attempt in ("first", "second"):
        started = time.perf_counter()
        etl()
        print(f"The {attempt} run took {time.perf_counter() - started:.2f}s.")
