"""Deployments, their schedules, and the runs made from them.

Future runs the scheduler made (``auto_scheduled``, still SCHEDULED) carry what the
deployment said when they were made: its parameters, its queue, its schedules. So when a
deployment's schedules, parameters or queue change, or it is paused or deleted, those runs
are deleted, and the scheduler makes them again from what the deployment says now. Runs
made by hand (``create_flow_run``), and runs already due, are kept.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from typing import Any, cast

from sqlalchemy import CursorResult, and_, delete, func, literal, select, type_coerce, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, aliased

from conveyor.exceptions import JobVariablesError
from conveyor.schemas.deployments import (
    DEFAULT_QUEUE,
    DeploymentCreate,
    DeploymentFilter,
    DeploymentFlowRunCreate,
    DeploymentScheduleCreate,
    DeploymentUpdate,
    parameter_errors,
)
from conveyor.schemas.states import State, StateDetails, StateType
from conveyor.schemas.work_pools import BaseJobTemplate, resolve_job_variables
from conveyor.server.database import orm
from conveyor.server.models import flow_runs
from conveyor.server.models.errors import Invalid, NotFound
from conveyor.server.models.flows import ensure_flow
from conveyor.server.models.work_pools import read_work_pool, read_work_queue


@dataclasses.dataclass(frozen=True)
class DeploymentView:
    """A deployment with the names of what it refers to and its schedules, in order."""

    deployment: orm.Deployment
    flow_name: str
    work_pool_name: str | None
    work_queue_name: str | None
    schedules: list[orm.DeploymentSchedule]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


# -- validation -------------------------------------------------------------------------
def _placement(
    session: Session, pool_name: str | None, queue_name: str | None
) -> tuple[orm.WorkPool | None, orm.WorkQueue | None]:
    if pool_name is None:
        return None, None
    pool = read_work_pool(session, pool_name)
    if pool is None:
        raise Invalid(
            f"work_pool_name: no work pool named {pool_name!r}; create it with "
            f"`conveyor work-pool create {pool_name}`."
        )
    if queue_name is None:
        return pool, None
    queue = read_work_queue(session, pool.id, queue_name)
    if queue is None:
        raise Invalid(
            f"work_queue_name: work pool {pool_name!r} has no queue named {queue_name!r}; "
            f"create it with `conveyor work-queue create {queue_name} --pool {pool_name}`."
        )
    return pool, queue


def _check_job_variables(pool: orm.WorkPool | None, *layers: dict[str, Any]) -> None:
    """Refuse job variables the pool's template does not declare or that do not fit it."""
    if pool is None:
        if any(layers):
            raise Invalid("job_variables: a deployment without a work pool has no job variables.")
        return
    template = BaseJobTemplate.model_validate(pool.base_job_template)
    try:
        resolve_job_variables(template, *layers)
    except JobVariablesError as exc:
        raise Invalid(
            "; ".join(f"job_variables.{field}: {message}" for field, message in exc.errors)
        ) from None


def _check_parameters(schema: dict[str, Any], parameters: dict[str, Any], where: str) -> None:
    errors = parameter_errors(schema, parameters)
    if errors:
        raise Invalid(
            "; ".join(
                f"{where}.{field}: {message}" if field else f"{where}: {message}"
                for field, message in errors
            )
        )


def _check_schedules(
    schema: dict[str, Any], defaults: dict[str, Any], schedules: list[DeploymentScheduleCreate]
) -> None:
    for index, item in enumerate(schedules):
        if item.parameters:
            merged = {**defaults, **item.parameters}
            _check_parameters(schema, merged, f"schedules[{index}].parameters")


# -- deploying --------------------------------------------------------------------------
def deploy(session: Session, data: DeploymentCreate) -> tuple[DeploymentView, bool]:
    """Create the deployment, or replace the one with its flow and name (keeping its id);
    ``(deployment, created)``."""
    pool, queue = _placement(session, data.work_pool_name, data.work_queue_name)
    _check_job_variables(pool, data.job_variables)
    _check_parameters(data.parameter_schema, data.parameters, "parameters")
    _check_schedules(data.parameter_schema, data.parameters, data.schedules)
    flow = ensure_flow(session, data.flow_name)
    now = _now()
    deployment = session.execute(
        select(orm.Deployment).where(
            orm.Deployment.flow_id == flow.id, orm.Deployment.name == data.name
        )
    ).scalar_one_or_none()
    created = deployment is None
    if deployment is None:
        deployment = orm.Deployment(id=uuid.uuid4(), flow_id=flow.id, name=data.name, created=now)
        session.add(deployment)
        stale = False
    else:
        stale = (
            data.paused
            or data.parameters != deployment.parameters
            or (queue.id if queue else None) != deployment.work_queue_id
            or (pool.id if pool else None) != deployment.work_pool_id
        )
    deployment.entrypoint = data.entrypoint
    deployment.source = data.source.model_dump(mode="json") if data.source else None
    deployment.parameters = data.parameters
    deployment.parameter_schema = data.parameter_schema
    deployment.work_pool_id = pool.id if pool else None
    deployment.work_queue_id = queue.id if queue else None
    deployment.job_variables = data.job_variables
    deployment.tags = data.tags
    deployment.version = data.version
    deployment.description = data.description
    deployment.paused = data.paused
    deployment.concurrency_limit = data.concurrency_limit
    deployment.collision_strategy = data.collision_strategy.value
    deployment.updated = now
    session.flush()
    if _replace_schedules(session, deployment.id, data.schedules) or stale:
        delete_future_auto_scheduled_runs(session, deployment.id)
    view = read_deployment(session, deployment.id)
    assert view is not None
    return view, created


def _schedule_json(item: DeploymentScheduleCreate) -> dict[str, Any]:
    return item.model_dump(mode="json")


def _replace_schedules(
    session: Session, deployment_id: uuid.UUID, schedules: list[DeploymentScheduleCreate]
) -> bool:
    """Make ``schedules`` the deployment's set; whether it changed (unchanged, the rows and
    their ids stay)."""
    old = _schedules_of(session, [deployment_id]).get(deployment_id, [])
    as_stored = [
        {"schedule": row.schedule, "active": row.active, "parameters": row.parameters}
        for row in old
    ]
    wanted = [_schedule_json(item) for item in schedules]
    if as_stored == wanted:
        return False
    session.execute(
        delete(orm.DeploymentSchedule).where(orm.DeploymentSchedule.deployment_id == deployment_id)
    )
    now = _now()
    for index, item in enumerate(wanted):
        # Schedules are listed by creation time: one microsecond apart keeps their order.
        session.add(
            orm.DeploymentSchedule(
                id=uuid.uuid4(),
                deployment_id=deployment_id,
                created=now + datetime.timedelta(microseconds=index),
                **item,
            )
        )
    session.flush()
    return True


def delete_future_auto_scheduled_runs(session: Session, deployment_id: uuid.UUID) -> int:
    """Delete the runs the scheduler made that are still SCHEDULED for a time to come."""
    run = orm.FlowRun
    result = cast(
        CursorResult[Any],
        session.execute(
            delete(run)
            .where(
                run.deployment_id == deployment_id,
                run.state_type == StateType.SCHEDULED.value,
                run.expected_start_time >= _now(),
                run.auto_scheduled.is_(True),
            )
            .execution_options(synchronize_session=False)
        ),
    )
    return int(result.rowcount)


# -- reading ----------------------------------------------------------------------------
def _schedules_of(
    session: Session, deployment_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[orm.DeploymentSchedule]]:
    if not deployment_ids:
        return {}
    rows = session.execute(
        select(orm.DeploymentSchedule)
        .where(orm.DeploymentSchedule.deployment_id.in_(deployment_ids))
        .order_by(orm.DeploymentSchedule.created, orm.DeploymentSchedule.id)
    ).scalars()
    found: dict[uuid.UUID, list[orm.DeploymentSchedule]] = {}
    for row in rows:
        found.setdefault(row.deployment_id, []).append(row)
    return found


def _views(session: Session, query: Any, *, with_schedules: bool = True) -> list[DeploymentView]:
    rows = session.execute(query).all()
    schedules = _schedules_of(session, [row[0].id for row in rows]) if with_schedules else {}
    return [
        DeploymentView(deployment, flow, pool, queue, schedules.get(deployment.id, []))
        for deployment, flow, pool, queue in rows
    ]


# One alias for every query: a new one per query would make each a new statement to
# compile (SQLAlchemy's statement cache keys on the alias).
_QUEUE = aliased(orm.WorkQueue)


def _select() -> Any:
    queue = _QUEUE
    return (
        select(orm.Deployment, orm.Flow.name, orm.WorkPool.name, queue.name)
        .join(orm.Flow, orm.Flow.id == orm.Deployment.flow_id)
        .outerjoin(orm.WorkPool, orm.WorkPool.id == orm.Deployment.work_pool_id)
        .outerjoin(queue, queue.id == orm.Deployment.work_queue_id)
        .execution_options(populate_existing=True)
    )


def read_deployment(session: Session, deployment_id: uuid.UUID) -> DeploymentView | None:
    views = _views(session, _select().where(orm.Deployment.id == deployment_id))
    return views[0] if views else None


def existing_deployment(
    session: Session, deployment_id: uuid.UUID, *, with_schedules: bool = True
) -> DeploymentView:
    """The deployment; without its schedules (``schedules`` empty) when the caller does
    not need them, e.g. to make a run. NotFound when there is none."""
    query = _select().where(orm.Deployment.id == deployment_id)
    views = _views(session, query, with_schedules=with_schedules)
    view = views[0] if views else None
    if view is None:
        raise NotFound(f"No deployment with id {deployment_id}.")
    return view


def read_deployments(session: Session, deployment_ids: list[uuid.UUID]) -> list[DeploymentView]:
    """The deployments among ``deployment_ids`` that exist, in id order."""
    if not deployment_ids:
        return []
    query = _select().where(orm.Deployment.id.in_(deployment_ids)).order_by(orm.Deployment.id)
    return _views(session, query)


def read_deployment_by_name(session: Session, flow_name: str, name: str) -> DeploymentView | None:
    query = _select().where(orm.Flow.name == flow_name, orm.Deployment.name == name)
    views = _views(session, query)
    return views[0] if views else None


def _has_tags(dialect: str, tags: list[str]) -> Any:
    column = orm.Deployment.tags
    if dialect == "postgresql":
        return type_coerce(column, JSONB).contains(list(tags))
    clauses = []
    for tag in dict.fromkeys(tags):
        each = func.json_each(column).table_valued("value")
        clauses.append(select(literal(1)).select_from(each).where(each.c.value == tag).exists())
    return and_(*clauses)


def filter_deployments(session: Session, flt: DeploymentFilter) -> list[DeploymentView]:
    query = _select()
    if flt.flow_name:
        query = query.where(orm.Flow.name.in_(flt.flow_name))
    if flt.name:
        query = query.where(orm.Deployment.name.in_(flt.name))
    if flt.work_pool_name:
        query = query.where(orm.WorkPool.name.in_(flt.work_pool_name))
    if flt.paused is not None:
        query = query.where(orm.Deployment.paused.is_(flt.paused))
    if flt.tags_all:
        query = query.where(_has_tags(session.get_bind().dialect.name, flt.tags_all))
    query = query.order_by(orm.Deployment.name, orm.Flow.name)
    return _views(session, query.limit(flt.limit).offset(flt.offset))


# -- changing ---------------------------------------------------------------------------
def update_deployment(
    session: Session, deployment_id: uuid.UUID, data: DeploymentUpdate
) -> DeploymentView:
    """Change the fields sent, validated as when deploying."""
    view = existing_deployment(session, deployment_id)
    deployment, fields = view.deployment, data.model_fields_set
    pool = read_work_pool(session, view.work_pool_name) if view.work_pool_name else None
    stale = False
    if "work_queue_name" in fields and data.work_queue_name != view.work_queue_name:
        if data.work_queue_name is not None and pool is None:
            raise Invalid("work_queue_name: a deployment without a work pool has no queue.")
        _, queue = _placement(session, view.work_pool_name, data.work_queue_name)
        deployment.work_queue_id = queue.id if queue else None
        stale = True
    if "job_variables" in fields:
        _check_job_variables(pool, data.job_variables)
        deployment.job_variables = data.job_variables
    if "parameters" in fields:
        _check_parameters(deployment.parameter_schema, data.parameters, "parameters")
        stale = stale or data.parameters != deployment.parameters
        deployment.parameters = data.parameters
    if "schedules" in fields:
        _check_schedules(deployment.parameter_schema, deployment.parameters, data.schedules)
        stale = _replace_schedules(session, deployment.id, data.schedules) or stale
    if "paused" in fields:
        stale = stale or data.paused
        deployment.paused = data.paused
    for field in ("tags", "version", "description", "concurrency_limit"):
        if field in fields:
            setattr(deployment, field, getattr(data, field))
    if "collision_strategy" in fields:
        deployment.collision_strategy = data.collision_strategy.value
    deployment.updated = _now()
    session.flush()
    if stale:
        delete_future_auto_scheduled_runs(session, deployment.id)
    return existing_deployment(session, deployment.id)


def delete_deployment(session: Session, deployment_id: uuid.UUID) -> None:
    """Delete the deployment, its schedules and its future auto-scheduled runs; its other
    runs stay, no longer linked to it."""
    existing_deployment(session, deployment_id)
    delete_future_auto_scheduled_runs(session, deployment_id)
    session.execute(
        update(orm.FlowRun)
        .where(orm.FlowRun.deployment_id == deployment_id)
        .values(deployment_id=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(delete(orm.Deployment).where(orm.Deployment.id == deployment_id))


# -- runs -------------------------------------------------------------------------------
def _run_by_key(session: Session, deployment_id: uuid.UUID, key: str) -> orm.FlowRun | None:
    return session.execute(
        select(orm.FlowRun).where(
            orm.FlowRun.deployment_id == deployment_id, orm.FlowRun.idempotency_key == key
        )
    ).scalar_one_or_none()


@dataclasses.dataclass(frozen=True)
class RunTemplate:
    """What every run of a deployment made with the same parameters and job variables
    shares, validated once: the scheduler makes many runs from one."""

    deployment: orm.Deployment
    flow_name: str
    parameters: dict[str, Any]
    job_variables: dict[str, Any]
    work_queue_id: uuid.UUID | None

    def values(
        self,
        when: datetime.datetime,
        *,
        key: str | None,
        name: str | None = None,
        tags: list[str] | None = None,
        parent_flow_run_id: uuid.UUID | None = None,
        parent_task_run_id: uuid.UUID | None = None,
        auto_scheduled: bool = False,
    ) -> tuple[dict[str, Any], State]:
        """The columns of one run due at ``when`` (for ``insert_flow_run``), and its state."""
        deployment = self.deployment
        state = State(type=StateType.SCHEDULED, state_details=StateDetails(scheduled_time=when))
        values = {
            "id": uuid.uuid4(),
            "flow_id": deployment.flow_id,
            "name": name or f"{deployment.name}-{uuid.uuid4().hex[:6]}",
            "parameters": self.parameters,
            "tags": list(dict.fromkeys([*deployment.tags, *(tags or [])])),
            "parent_flow_run_id": parent_flow_run_id,
            "parent_task_run_id": parent_task_run_id,
            "deployment_id": deployment.id,
            "work_queue_id": self.work_queue_id,
            "job_variables": self.job_variables,
            "idempotency_key": key,
            "auto_scheduled": auto_scheduled,
        }
        return values, state


def run_template(
    session: Session,
    view: DeploymentView,
    parameters: dict[str, Any],
    job_variables: dict[str, Any],
    *,
    where: str = "parameters",
) -> RunTemplate:
    """Runs of the deployment with ``parameters`` laid over its defaults and these job
    variables, in its queue or its pool's default queue; ``Invalid`` naming the field
    (``where`` for parameters) when they do not fit."""
    deployment = view.deployment
    merged = {**deployment.parameters, **parameters}
    _check_parameters(deployment.parameter_schema, merged, where)
    pool = read_work_pool(session, view.work_pool_name) if view.work_pool_name else None
    _check_job_variables(pool, deployment.job_variables, job_variables)
    queue_id = deployment.work_queue_id
    if queue_id is None and pool is not None:
        default = read_work_queue(session, pool.id, DEFAULT_QUEUE)
        queue_id = default.id if default is not None else None
    return RunTemplate(deployment, view.flow_name, merged, job_variables, queue_id)


def create_deployment_flow_run(
    session: Session, deployment_id: uuid.UUID, data: DeploymentFlowRunCreate
) -> tuple[orm.FlowRun, str, bool]:
    """A SCHEDULED run of the deployment; ``(run, flow name, created)``.

    With an ``idempotency_key`` the deployment already has a run for, that run is returned
    unchanged. Parameters and job variables are validated before anything is written.
    """
    view = existing_deployment(session, deployment_id, with_schedules=False)
    deployment = view.deployment
    key = data.idempotency_key
    if key is not None and (existing := _run_by_key(session, deployment.id, key)) is not None:
        return existing, view.flow_name, False
    template = run_template(session, view, data.parameters, data.job_variables)
    parent = data.parent_flow_run_id
    if parent is not None and session.get(orm.FlowRun, parent) is None:
        raise Invalid(f"parent_flow_run_id: no flow run with id {parent}.")
    values, state = template.values(
        data.scheduled_time or _now(),
        key=key,
        name=data.name,
        tags=data.tags,
        parent_flow_run_id=parent,
        parent_task_run_id=data.parent_task_run_id,
    )
    run = flow_runs.insert_flow_run(session, values, state)
    if run is None:  # a request with the same key won the race
        assert key is not None
        existing = _run_by_key(session, deployment.id, key)
        assert existing is not None
        return existing, view.flow_name, False
    return run, view.flow_name, True
