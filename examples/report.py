"""A health report: a subflow per service, retries, a tolerated failure, and artifacts.

Run it with ``python examples/report.py``. The demo (``make run``) deploys it on a
schedule, every minute, so the server shows its runs as they happen. Each service is
checked by the subflow ``check-service``: its latency probe times out on the first
attempt and succeeds on the retry, and a certificate check fails for one service without
failing the report (a Failed task run in a Completed flow run). The report is published as
a table artifact and a markdown artifact under the key ``health-report``.
"""

from __future__ import annotations

import itertools
import random
import time

from conveyor import (
    create_markdown_artifact,
    create_table_artifact,
    flow,
    get_run_logger,
    task,
)

SERVICES = ("api", "billing", "search")
_probes = itertools.count(1)


@task(retries=2, retry_delay_seconds=0.5)
def probe(service: str) -> float:
    """Measure a service's latency in ms; the first probe of a run times out."""
    if next(_probes) == 1:
        raise TimeoutError(f"{service} did not answer within 2s")
    latency = random.uniform(20, 400)
    time.sleep(latency / 1000)
    return round(latency, 1)


@task
def check_certificate(service: str) -> int:
    """Days until the service's TLS certificate expires; fails when it is under a week."""
    days = {"billing": 3}.get(service, 90)
    if days < 7:
        raise ValueError(f"the certificate of {service} expires in {days} days")
    return days


@flow(name="check-service")
def check_service(service: str, slow_ms: float) -> dict[str, object]:
    logger = get_run_logger()
    latency = probe(service)
    certificate = check_certificate(service, return_state=True)
    if not certificate.is_completed():
        logger.warning("%s: the certificate check failed; the report goes on.", service)
    status = "slow" if latency > slow_ms else "ok"
    logger.info("%s answered in %.1f ms (%s).", service, latency, status)
    return {"service": service, "latency_ms": latency, "status": status}


@flow(log_prints=True)
def report(services: tuple[str, ...] = SERVICES, slow_ms: float = 300) -> int:
    """Check every service (one subflow each) and publish the results; returns how many
    were slow."""
    rows = [check_service(service, slow_ms) for service in services]
    slow = [row["service"] for row in rows if row["status"] == "slow"]
    create_table_artifact(rows, key="health-report", description="Latency per service")
    create_markdown_artifact(
        f"# Health report\n\n{len(rows)} services checked, {len(slow)} slow"
        + (f": {', '.join(map(str, slow))}." if slow else "."),
        key="health-report-summary",
    )
    print(f"Checked {len(rows)} services; slow: {', '.join(map(str, slow)) or 'none'}.")
    return len(slow)


if __name__ == "__main__":
    report()
