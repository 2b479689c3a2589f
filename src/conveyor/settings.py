"""Settings: one object built from the environment when asked, never at import time."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    """What Conveyor reads from ``CONVEYOR_*`` environment variables.

    Build one with ``Settings.from_env()`` and pass it where it is needed.
    """

    home: Path = field(default_factory=lambda: Path("~/.conveyor").expanduser())
    api_url: str | None = None
    logging_level: str = "INFO"
    result_storage: str | None = None
    """Default result store URL; None means ``<home>/storage``."""
    persist_results: bool = False
    result_serializer: str = "cloudpickle"

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("CONVEYOR_HOME") or "~/.conveyor").expanduser()
        return cls(
            home=home,
            api_url=os.environ.get("CONVEYOR_API_URL") or None,
            logging_level=(os.environ.get("CONVEYOR_LOGGING_LEVEL") or "INFO").upper(),
            result_storage=os.environ.get("CONVEYOR_RESULT_STORAGE") or None,
            persist_results=_env_bool("CONVEYOR_PERSIST_RESULTS", False),
            result_serializer=os.environ.get("CONVEYOR_RESULT_SERIALIZER") or "cloudpickle",
        )

    @property
    def default_result_storage(self) -> str:
        return self.result_storage or str(self.home / "storage")
