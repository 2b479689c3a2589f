"""``conveyor.yaml``: the deployments a project declares, read and checked by pydantic.

The file holds either ``deployments:``, a list, or a single deployment at the top level.
Relative local sources are read from the file's directory, not the current one, so
``conveyor deploy --file sub/conveyor.yaml`` means the same from anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conveyor.deployments.errors import DeployError

__all__ = ["DeploymentSpec", "WorkPoolSpec", "load_config", "validation_message"]

_STRICT = ConfigDict(extra="forbid")


class WorkPoolSpec(BaseModel):
    model_config = _STRICT

    name: str = Field(min_length=1)
    queue: str | None = None
    """None: the pool's ``default`` queue."""
    job_variables: dict[str, Any] = Field(default_factory=dict)


class DeploymentSpec(BaseModel):
    """One deployment as written in ``conveyor.yaml`` (or given to ``Flow.deploy``)."""

    model_config = _STRICT

    name: str = Field(min_length=1)
    entrypoint: str = Field(min_length=1)
    source: str | dict[str, Any] | None = None
    """The ``source_from_string`` short form, or a mapping with a ``kind``; None: the
    directory of ``conveyor.yaml``."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    schedules: list[dict[str, Any]] = Field(default_factory=list)
    """Each a mapping with one of ``cron``, ``interval`` (seconds) or ``rrule``, and
    optionally ``timezone``, ``anchor_date``, ``day_or``, ``active`` and ``parameters``."""
    work_pool: WorkPoolSpec | None = None
    """None: the deployment is served by its own process (``flow.serve()``)."""
    tags: list[str] = Field(default_factory=list)
    version: str | None = None
    description: str | None = None
    paused: bool = False
    concurrency_limit: int | None = None
    collision_strategy: str = "ENQUEUE"


class _File(BaseModel):
    model_config = _STRICT

    deployments: list[DeploymentSpec] = Field(min_length=1)


def validation_message(
    exc: ValidationError, prefix: str = "", skip: tuple[tuple[str, ...], ...] = ()
) -> str:
    """Every error of ``exc`` as ``field: message``, joined by ``; ``, leaving out of each
    field's path its leading parts that ``skip`` allows, one level each (wrappers and union
    tags the user never wrote)."""
    parts = []
    for error in exc.errors():
        where = prefix
        loc = list(error["loc"])
        for allowed in skip:
            if loc and loc[0] in allowed:
                loc.pop(0)
        for item in loc:
            where += f"[{item}]" if isinstance(item, int) else f"{'.' if where else ''}{item}"
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def load_config(path: Path) -> list[DeploymentSpec]:
    """The deployments ``path`` declares; raises DeployError naming the field at fault."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise DeployError(
            f"Cannot read {path}: {exc.strerror}; write a conveyor.yaml or pass --file."
        ) from None
    except yaml.YAMLError as exc:
        raise DeployError(f"{path} is not valid YAML ({exc}); fix it and deploy again.") from None
    if isinstance(data, dict) and "deployments" not in data:
        data = {"deployments": [data]}
    if not isinstance(data, dict):
        raise DeployError(f"{path} must hold a mapping with a 'deployments' list.")
    try:
        return _File.model_validate(data).deployments
    except ValidationError as exc:
        raise DeployError(f"{path}: {validation_message(exc)}.") from None
