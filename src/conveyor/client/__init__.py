"""How the engine reports runs: a recorder that batches task-run states and logs and
ships them through a transport (none, in-memory, and later HTTP or the embedded database).
"""

from conveyor.client.recorder import (
    Batch,
    CollectingRecorder,
    MemoryTransport,
    NullRecorder,
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
