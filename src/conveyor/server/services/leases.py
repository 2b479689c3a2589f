"""ExpiredLeases: delete concurrency leases whose holders stopped renewing them.

Expired leases already hold no slots (every count ignores them), and acquiring a limit
deletes its own; this removes the rest, e.g. of limits nobody acquires any more, so the
table does not grow forever, and wakes requests waiting on those limits at once.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from conveyor.server.database.engine import Database
from conveyor.server.models import concurrency_limits
from conveyor.server.services.base import LoopService
from conveyor.settings import DEFAULT_SERVICE_INTERVALS


class ExpiredLeases(LoopService):
    name = "expired_leases"
    interval = DEFAULT_SERVICE_INTERVALS[name]
    batch_size = 1000

    def __init__(
        self,
        database: Database,
        *,
        on_freed: Callable[[str], None] | None = None,
        **options: Any,
    ) -> None:
        """``on_freed(limit_name)`` is called for each limit that lost leases."""
        super().__init__(database, **options)
        self.on_freed = on_freed

    async def run_once(self, now: datetime.datetime) -> int:
        deleted, names = await self.database.write(
            concurrency_limits.delete_expired_leases, now, self.batch_size
        )
        if self.on_freed is not None:
            for name in sorted(names):
                self.on_freed(name)
        return deleted
