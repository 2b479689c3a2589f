"""Settings: one object built from the environment when asked, never at import time."""

from __future__ import annotations

import os
from collections.abc import Mapping
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
    errors.extend(_services_env_errors())
    return errors


# The server's background services, by the names their settings use, and the seconds
# between their passes unless CONVEYOR_SERVER_SERVICES_<NAME>_INTERVAL_SECONDS says.
DEFAULT_SERVICE_INTERVALS: Mapping[str, float] = {
    "late_runs": 5.0,
    "cancellation_cleanup": 10.0,
    "expired_leases": 30.0,
    "retention": 3600.0,
    "scheduler": 30.0,
    "reaper": 5.0,
    "rescheduler": 10.0,
    "pauses": 5.0,
}
SERVICE_NAMES = tuple(DEFAULT_SERVICE_INTERVALS)
_SERVICES = "CONVEYOR_SERVER_SERVICES"


def _service_numbers() -> dict[str, str]:
    """Every numeric services variable that is set: name -> value."""
    names = [f"{_SERVICES}_{s.upper()}_INTERVAL_SECONDS" for s in SERVICE_NAMES]
    names += [
        "CONVEYOR_SERVER_LATE_RUNS_AFTER_SECONDS",
        "CONVEYOR_SERVER_CANCELLING_TIMEOUT_SECONDS",
        "CONVEYOR_SERVER_RETENTION_DAYS",
        "CONVEYOR_SERVER_REAPER_AFTER_SECONDS",
        "CONVEYOR_SERVER_RESCHEDULER_MAX_ATTEMPTS",
        "CONVEYOR_SERVER_RESCHEDULER_DELAY_SECONDS",
    ]
    return {name: value for name in names if (value := os.environ.get(name, "").strip())}


def _services_env_errors() -> list[str]:
    return [
        f"{name}={value!r} is not a positive number."
        for name, value in _service_numbers().items()
        if not _positive(value)
    ]


@dataclass(frozen=True)
class ServicesSettings:
    """Which background services ``conveyor server start`` runs, and how.

    Only the started server runs them; the local database that ``python my_flow.py``
    records into runs none.
    """

    enabled: bool = True
    """``CONVEYOR_SERVER_SERVICES_ENABLED``: false runs none of them."""
    disabled: frozenset[str] = frozenset()
    """Services turned off one by one: ``CONVEYOR_SERVER_SERVICES_<NAME>_ENABLED=false``."""
    intervals: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SERVICE_INTERVALS))
    """Seconds between passes, by service:
    ``CONVEYOR_SERVER_SERVICES_<NAME>_INTERVAL_SECONDS``."""
    late_runs_after_seconds: float = 15.0
    """A Scheduled run this long past its time is marked Late."""
    cancelling_timeout_seconds: float = 120.0
    """A run still Cancelling this long is made Cancelled."""
    retention_days: float | None = None
    """Finished runs older than this are deleted; None keeps everything."""
    reaper_after_seconds: float = 25.0
    """A Pending or Running run that should heartbeat and has not for this long is Crashed."""
    rescheduler_max_attempts: int = 3
    """How many times a crashed deployment run is scheduled again."""
    rescheduler_delay_seconds: float = 10.0
    """How long after the rescheduler sees a crashed run it is due again."""

    def runs(self, name: str) -> bool:
        return self.enabled and name not in self.disabled

    def env_values(self) -> dict[str, object]:
        """Each ``CONVEYOR_SERVER_*`` variable and the value it has here (for display)."""
        values: dict[str, object] = {f"{_SERVICES}_ENABLED": self.enabled}
        for name in SERVICE_NAMES:
            values[f"{_SERVICES}_{name.upper()}_ENABLED"] = name not in self.disabled
            values[f"{_SERVICES}_{name.upper()}_INTERVAL_SECONDS"] = self.intervals.get(name)
        values["CONVEYOR_SERVER_LATE_RUNS_AFTER_SECONDS"] = self.late_runs_after_seconds
        values["CONVEYOR_SERVER_CANCELLING_TIMEOUT_SECONDS"] = self.cancelling_timeout_seconds
        values["CONVEYOR_SERVER_RETENTION_DAYS"] = self.retention_days
        values["CONVEYOR_SERVER_REAPER_AFTER_SECONDS"] = self.reaper_after_seconds
        values["CONVEYOR_SERVER_RESCHEDULER_MAX_ATTEMPTS"] = self.rescheduler_max_attempts
        values["CONVEYOR_SERVER_RESCHEDULER_DELAY_SECONDS"] = self.rescheduler_delay_seconds
        return values

    @classmethod
    def from_env(cls) -> ServicesSettings:
        numbers = {k: float(v) for k, v in _service_numbers().items() if _positive(v)}
        default = cls()  # each default is written once, on its field above
        intervals = dict(DEFAULT_SERVICE_INTERVALS)
        for name in SERVICE_NAMES:
            interval = numbers.get(f"{_SERVICES}_{name.upper()}_INTERVAL_SECONDS")
            if interval is not None:
                intervals[name] = interval
        return cls(
            enabled=_env_bool(f"{_SERVICES}_ENABLED", True),
            disabled=frozenset(
                name
                for name in SERVICE_NAMES
                if not _env_bool(f"{_SERVICES}_{name.upper()}_ENABLED", True)
            ),
            intervals=intervals,
            late_runs_after_seconds=numbers.get(
                "CONVEYOR_SERVER_LATE_RUNS_AFTER_SECONDS", default.late_runs_after_seconds
            ),
            cancelling_timeout_seconds=numbers.get(
                "CONVEYOR_SERVER_CANCELLING_TIMEOUT_SECONDS", default.cancelling_timeout_seconds
            ),
            retention_days=numbers.get("CONVEYOR_SERVER_RETENTION_DAYS"),
            reaper_after_seconds=numbers.get(
                "CONVEYOR_SERVER_REAPER_AFTER_SECONDS", default.reaper_after_seconds
            ),
            rescheduler_max_attempts=int(
                numbers.get(
                    "CONVEYOR_SERVER_RESCHEDULER_MAX_ATTEMPTS", default.rescheduler_max_attempts
                )
            ),
            rescheduler_delay_seconds=numbers.get(
                "CONVEYOR_SERVER_RESCHEDULER_DELAY_SECONDS", default.rescheduler_delay_seconds
            ),
        )


def _positive(value: str) -> bool:
    try:
        return float(value) > 0
    except ValueError:
        return False


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
    services: ServicesSettings = field(default_factory=ServicesSettings)
    """The server's background services (``CONVEYOR_SERVER_SERVICES_*``)."""

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
            services=ServicesSettings.from_env(),
        )

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'conveyor.db'}"

    @property
    def default_result_storage(self) -> str:
        return self.result_storage or str(self.home / "storage")
