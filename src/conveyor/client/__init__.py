"""How the engine reports runs: a recorder that batches task-run states and logs and
ships them through a transport (none, in-memory, and later HTTP or the embedded database).

Names load on first use so that importing a task runner does not load the schemas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.client.null import NullRecorder
    from conveyor.client.recorder import (
        Batch,
        CollectingRecorder,
        MemoryTransport,
        Recorder,
        RunRecorder,
        Transport,
    )

__all__ = [
    "Batch",
    "CollectingRecorder",
    "MemoryTransport",
    "NullRecorder",
    "Recorder",
    "RunRecorder",
    "Transport",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'conveyor.client' has no attribute {name!r}")
    module = "conveyor.client.null" if name == "NullRecorder" else "conveyor.client.recorder"
    return getattr(importlib.import_module(module), name)
