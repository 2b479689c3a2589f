"""Deployments described from a Flow object: ``Flow.deploy`` and ``Flow.to_deployment``.

The entrypoint is found from the flow function's file, relative to the code source's
directory (by default that file's own directory), so a worker importing it there gets the
same function. The flow is not imported again to check it: this process already has it,
and its module may call ``deploy`` at import time.
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from conveyor.deployments.config import DeploymentSpec, WorkPoolSpec
from conveyor.deployments.errors import DeployError

if TYPE_CHECKING:
    from conveyor.client.api import ConveyorClient
    from conveyor.engine.flows import Flow
    from conveyor.schemas.schedules import Schedule

T = TypeVar("T")
ScheduleLike = dict[str, Any] | Any
"""A ``conveyor.yaml`` schedule mapping, or a ``CronSchedule``/``IntervalSchedule``/..."""


@dataclasses.dataclass(frozen=True)
class FlowDeployment:
    """A flow and how to deploy it: what ``Flow.to_deployment`` returns, for
    ``conveyor.serve``."""

    flow: Flow[..., Any]
    spec: DeploymentSpec


def _flow_file(flow: Flow[..., Any]) -> Path:
    fn = inspect.unwrap(flow.fn)
    try:
        file = inspect.getsourcefile(fn)
    except TypeError:
        file = None
    if file is None:
        raise DeployError(
            f"Flow {flow.name!r} has no source file to deploy from; pass entrypoint= and source=."
        )
    return Path(file).resolve()


def infer_entrypoint(flow: Flow[..., Any], root: Path) -> str:
    """``relative/path.py:function`` for ``flow`` inside ``root``."""
    fn = inspect.unwrap(flow.fn)
    qualname = str(getattr(fn, "__qualname__", ""))
    if not qualname or "<locals>" in qualname or "<lambda>" in qualname:
        raise DeployError(
            f"Flow {flow.name!r} is not defined at a module's top level, so a worker cannot "
            f"import it; define it at the top level, or pass entrypoint=."
        )
    file = _flow_file(flow)
    try:
        relative = file.relative_to(root.resolve())
    except ValueError:
        raise DeployError(
            f"Flow {flow.name!r} is in {file}, outside the source directory {root}; pass "
            f"entrypoint= or a source that contains it."
        ) from None
    return f"{relative.as_posix()}:{qualname}"


def schedule_mappings(
    schedules: list[ScheduleLike] | None,
    cron: str | None,
    interval: float | datetime.timedelta | None,
    rrule: str | None,
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for item in schedules or []:
        found.append(item if isinstance(item, dict) else _mapping(item))
    if cron is not None:
        found.append({"cron": cron})
    if interval is not None:
        seconds = interval.total_seconds() if isinstance(interval, datetime.timedelta) else interval
        found.append({"interval": seconds})
    if rrule is not None:
        found.append({"rrule": rrule})
    return found


def _mapping(schedule: Schedule) -> dict[str, Any]:
    data: dict[str, Any] = schedule.model_dump(mode="json")
    data.pop("kind", None)
    return data


def spec_for(
    flow: Flow[..., Any],
    name: str,
    *,
    source: str | Any | None,
    entrypoint: str | None,
    work_pool: WorkPoolSpec | None,
    **fields: Any,
) -> tuple[DeploymentSpec, Path]:
    """The spec deploying ``flow`` as ``name``, and the directory relative sources are
    read from (the current one)."""
    from conveyor.deployments.deploy import resolve_source
    from conveyor.schemas.sources import LocalSource

    base = Path.cwd()
    if source is None:
        source = str(_flow_file(flow).parent)
    resolved = resolve_source(source if isinstance(source, str) else source.model_dump(), base)
    if entrypoint is None:
        # Code fetched from elsewhere is laid out like the current directory, presumably
        # the checkout it came from.
        root = Path(resolved.path) if isinstance(resolved, LocalSource) else base
        entrypoint = infer_entrypoint(flow, root)
    spec = DeploymentSpec(
        name=name,
        entrypoint=entrypoint,
        source=resolved.model_dump(mode="json"),
        work_pool=work_pool,
        **{k: v for k, v in fields.items() if v is not None},
    )
    return spec, base


def deploy_flow(flow: Flow[..., Any], spec: DeploymentSpec, base: Path) -> Any:
    """Check and send ``spec``; returns the deployment's id."""
    from conveyor.deployments.deploy import prepare

    async def send(client: ConveyorClient) -> Any:
        body = await prepare(client, spec, base, flow=flow)
        return (await client.deploy(body)).id

    from conveyor.client.embedded import run_with_client

    return run_with_client(send)
