"""Turning declared deployments into ``DeploymentCreate`` bodies, checked, then sending them.

Everything is checked before anything is sent (the flow loads from its code, schedules
parse, the pool and queue exist, job variables and parameters fit), so a bad deployment in
a file leaves the server as it was. The server checks again; this only says it earlier,
and names the deployment.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from conveyor.deployments.config import DeploymentSpec, validation_message
from conveyor.deployments.errors import CodeSourceError, DeployError, EntrypointError

if TYPE_CHECKING:
    from conveyor.client.api import ConveyorClient
    from conveyor.engine.flows import Flow
    from conveyor.schemas.deployments import (
        DeploymentCreate,
        DeploymentRead,
        DeploymentScheduleCreate,
    )
    from conveyor.schemas.sources import CodeSource

__all__ = ["apply", "prepare", "resolve_source"]

_KINDS = ("cron", "interval", "rrule")


def resolve_source(source: str | dict[str, Any] | None, base: Path) -> CodeSource:
    """The code source ``source`` names, a relative directory read from ``base``."""
    from conveyor.schemas.sources import CodeSource, LocalSource, source_from_string

    if source is None:
        return LocalSource(path=str(base.resolve()))
    if isinstance(source, dict):
        if source.get("kind") == "local" and isinstance(source.get("path"), str):
            source = {**source, "path": str((base / os.path.expanduser(source["path"])).resolve())}
        resolved: CodeSource = TypeAdapter(CodeSource).validate_python(source)
        return resolved
    resolved = source_from_string(source)
    if isinstance(resolved, LocalSource) and not Path(os.path.expanduser(source)).is_absolute():
        return LocalSource(path=str((base / source).resolve()))
    return resolved


def _schedule(raw: dict[str, Any]) -> DeploymentScheduleCreate:
    from conveyor.schemas.deployments import DeploymentScheduleCreate

    kinds = [kind for kind in _KINDS if kind in raw]
    if len(kinds) != 1:
        raise ValueError("give exactly one of cron, interval or rrule")
    schedule = {k: v for k, v in raw.items() if k not in ("active", "parameters")}
    body = {"schedule": {"kind": kinds[0], **schedule}}
    body.update({k: raw[k] for k in ("active", "parameters") if k in raw})
    return DeploymentScheduleCreate.model_validate(body)


def _load(spec: DeploymentSpec, source: CodeSource) -> Flow[..., Any]:
    from conveyor.deployments.entrypoints import load_flow
    from conveyor.deployments.sources import fetch
    from conveyor.schemas.sources import LocalSource

    if isinstance(source, LocalSource):
        return load_flow(spec.entrypoint, fetch(source, Path(source.path)))
    # Loading needs the code on this machine: fetch it as a worker would, then forget it.
    with tempfile.TemporaryDirectory(prefix="conveyor-deploy-") as scratch:
        return load_flow(spec.entrypoint, fetch(source, Path(scratch, "code")))


async def _check_pool(client: ConveyorClient, spec: DeploymentSpec) -> None:
    from conveyor.client.api import ApiError
    from conveyor.exceptions import JobVariablesError
    from conveyor.schemas.work_pools import BaseJobTemplate, resolve_job_variables

    pool = spec.work_pool
    if pool is None:
        return
    try:
        read = await client.read_work_pool(pool.name)
    except ApiError as exc:
        if exc.status != 404:
            raise
        raise ValueError(
            f"work_pool.name: there is no work pool named {pool.name!r}; create it with "
            f"`conveyor work-pool create {pool.name}`"
        ) from None
    if pool.queue is not None:
        try:
            await client.read_work_queue(pool.name, pool.queue)
        except ApiError as exc:
            if exc.status != 404:
                raise
            raise ValueError(
                f"work_pool.queue: work pool {pool.name!r} has no queue {pool.queue!r}; create "
                f"it with `conveyor work-queue create {pool.queue} --pool {pool.name}`"
            ) from None
    try:
        template = BaseJobTemplate.model_validate(read.base_job_template)
        resolve_job_variables(template, pool.job_variables)
    except JobVariablesError as exc:
        raise ValueError(
            "; ".join(f"work_pool.job_variables.{field}: {msg}" for field, msg in exc.errors)
        ) from None


async def prepare(
    client: ConveyorClient,
    spec: DeploymentSpec,
    base: Path,
    flow: Flow[..., Any] | None = None,
) -> DeploymentCreate:
    """The body that deploys ``spec``, its code loaded from its source unless ``flow`` is
    given; raises DeployError naming the deployment and the field."""
    from conveyor.deployments.entrypoints import parameter_schema
    from conveyor.schemas.deployments import DeploymentCreate, parameter_errors

    where = f"Deployment {spec.name!r}"
    try:
        source = resolve_source(spec.source, base)
        if flow is None:
            flow = _load(spec, source)
        schema = parameter_schema(flow)
        schedules = []
        for i, raw in enumerate(spec.schedules):
            try:
                schedules.append(_schedule(raw))
            except ValidationError as exc:
                skip = (("schedule",), _KINDS)
                raise ValueError(validation_message(exc, f"schedules[{i}]", skip)) from None
            except ValueError as exc:
                raise ValueError(f"schedules[{i}]: {exc}") from None
        for field, overrides in [("parameters", {})] + [
            (f"schedules[{i}].parameters", s.parameters) for i, s in enumerate(schedules)
        ]:
            errors = parameter_errors(schema, {**spec.parameters, **overrides})
            if errors:
                raise ValueError("; ".join(f"{field}.{name}: {msg}" for name, msg in errors))
        await _check_pool(client, spec)
        pool = spec.work_pool
        return DeploymentCreate(
            flow_name=flow.name,
            name=spec.name,
            entrypoint=spec.entrypoint,
            source=source,
            parameters=spec.parameters,
            parameter_schema=schema,
            work_pool_name=pool.name if pool else None,
            work_queue_name=pool.queue if pool else None,
            job_variables=pool.job_variables if pool else {},
            schedules=schedules,
            tags=spec.tags,
            version=spec.version,
            description=spec.description if spec.description is not None else flow.description,
            paused=spec.paused,
            concurrency_limit=spec.concurrency_limit,
            collision_strategy=spec.collision_strategy,  # type: ignore[arg-type]
        )
    except (EntrypointError, CodeSourceError) as exc:
        raise DeployError(f"{where}: entrypoint {spec.entrypoint!r}: {exc}") from exc
    except ValidationError as exc:
        raise DeployError(f"{where}: {validation_message(exc)}.") from None
    except ValueError as exc:
        raise DeployError(f"{where}: {str(exc).rstrip('.')}.") from None


async def apply(
    client: ConveyorClient, specs: list[DeploymentSpec], base: Path
) -> list[DeploymentRead]:
    """Check every deployment of ``specs``, then (only if all pass) send them in order."""
    bodies = [await prepare(client, spec, base) for spec in specs]
    return [await client.deploy(body) for body in bodies]
