"""Which services the server runs, built from its settings."""

from __future__ import annotations

from collections.abc import Callable

from conveyor.server.database.engine import Database
from conveyor.server.services.base import LoopService
from conveyor.server.services.cancellation import CancellationCleanup
from conveyor.server.services.late_runs import LateRuns
from conveyor.server.services.leases import ExpiredLeases
from conveyor.server.services.pauses import PauseExpiry
from conveyor.server.services.reaper import Reaper
from conveyor.server.services.rescheduler import Rescheduler
from conveyor.server.services.retention import Retention
from conveyor.server.services.scheduler import Scheduler
from conveyor.settings import ServicesSettings


def build_services(
    settings: ServicesSettings,
    database: Database,
    *,
    on_slots_freed: Callable[[str], None] | None = None,
) -> list[LoopService]:
    """The enabled services, configured; none when services are off. Retention runs only
    when a retention age is set."""
    candidates: list[LoopService] = [
        LateRuns(database, after_seconds=settings.late_runs_after_seconds),
        CancellationCleanup(database, timeout_seconds=settings.cancelling_timeout_seconds),
        ExpiredLeases(database, on_freed=on_slots_freed),
        Scheduler(database),
        Reaper(database, after_seconds=settings.reaper_after_seconds),
        Rescheduler(
            database,
            max_attempts=settings.rescheduler_max_attempts,
            delay_seconds=settings.rescheduler_delay_seconds,
        ),
        PauseExpiry(database),
    ]
    if settings.retention_days is not None:
        candidates.append(Retention(database, retention_days=settings.retention_days))
    services = [s for s in candidates if settings.runs(s.name)]
    for service in services:
        service.interval = settings.intervals.get(service.name, service.interval)
    return services
