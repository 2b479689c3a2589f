"""Settings: one object built from the environment when asked, never at import time."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.exceptions import ConfigurationError

LOGGING_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
BACKENDS = ("auto", "none")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in _TRUE


def env_errors() -> list[str]:
    """What is wrong with the ``CONVEYOR_*`` variables that are set, one sentence each."""
    errors = []
    level = (os.environ.get("CONVEYOR_LOGGING_LEVEL") or "INFO").strip().upper()
    if level not in LOGGING_LEVELS:
        errors.append(
            f"CONVEYOR_LOGGING_LEVEL={level!r} is not a logging level; "
            f"use one of {', '.join(LOGGING_LEVELS)}."
        )
    backend = (os.environ.get("CONVEYOR_BACKEND") or "auto").strip().lower()
    if backend not in BACKENDS:
        errors.append(
            f"CONVEYOR_BACKEND={backend!r} is not a backend; use one of {', '.join(BACKENDS)}."
        )
    flag = (os.environ.get("CONVEYOR_PERSIST_RESULTS") or "").strip().lower()
    if flag and flag not in _TRUE + _FALSE:
        errors.append(f"CONVEYOR_PERSIST_RESULTS={flag!r} is not a boolean; use true or false.")
    return errors


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
    database_url: str | None = None
    """SQLAlchemy async URL; None means SQLite at ``<home>/conveyor.db``."""
    backend: str = "auto"
    """Where runs are recorded: ``auto`` (the server at ``api_url`` if set, otherwise the
    local database, embedded) or ``none`` (nothing is recorded, e.g. in unit tests)."""

    @classmethod
    def from_env(cls, strict: bool = True) -> Settings:
        """Read the environment; with ``strict``, raise ConfigurationError on bad values."""
        errors = env_errors()
        if strict and errors:
            raise ConfigurationError(" ".join(errors))
        home = Path(os.environ.get("CONVEYOR_HOME") or "~/.conveyor").expanduser()
        return cls(
            home=home,
            api_url=os.environ.get("CONVEYOR_API_URL") or None,
            logging_level=(os.environ.get("CONVEYOR_LOGGING_LEVEL") or "INFO").strip().upper(),
            result_storage=os.environ.get("CONVEYOR_RESULT_STORAGE") or None,
            persist_results=_env_bool("CONVEYOR_PERSIST_RESULTS", False),
            result_serializer=os.environ.get("CONVEYOR_RESULT_SERIALIZER") or "cloudpickle",
            database_url=os.environ.get("CONVEYOR_DATABASE_URL") or None,
            backend=(os.environ.get("CONVEYOR_BACKEND") or "auto").strip().lower(),
        )

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'conveyor.db'}"

    @property
    def default_result_storage(self) -> str:
        return self.result_storage or str(self.home / "storage")
