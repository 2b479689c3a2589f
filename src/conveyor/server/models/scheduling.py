"""Runs made from a deployment's schedules: ahead of time by the scheduler, and by backfill.

**At most once.** The run for a scheduled time ``t`` carries the idempotency key
``scheduled:<t in UTC, ISO 8601>``, and runs are inserted with INSERT-or-ignore on the
unique index (deployment_id, idempotency_key). So a deployment gets at most one run per
instant whoever makes it (two schedulers, a restart, a redeploy, a backfill) and however
its schedules name that instant (two schedules, a wall time repeated by DST). When several
schedules of a deployment name one instant, the run has the parameter overrides of the
first of them, in the deployment's order.

Scheduled runs are ``auto_scheduled``, so a change to the deployment deletes those still to
come and the scheduler makes them again (``models/deployments.py``); backfilled ones are
not, so they stay.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import logging
import uuid
from collections.abc import Sequence

from pydantic import TypeAdapter
from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session

from conveyor.schemas.deployments import MAX_BACKFILL_RUNS, DeploymentBackfill
from conveyor.schemas.schedules import Schedule
from conveyor.schemas.states import StateType
from conveyor.server.database import orm
from conveyor.server.models import flow_runs
from conveyor.server.models.deployments import (
    DeploymentView,
    RunTemplate,
    existing_deployment,
    read_deployments,
    run_template,
)
from conveyor.server.models.errors import Invalid

logger = logging.getLogger("conveyor.server.services")

_UTC = datetime.timezone.utc
_FOREVER = datetime.datetime.max.replace(tzinfo=_UTC)
_TICK = datetime.timedelta(microseconds=1)


@dataclasses.dataclass(frozen=True)
class Lookahead:
    """How far ahead the scheduler keeps a deployment's runs made: every scheduled time
    within ``horizon`` of now, but at least ``min_runs`` and at most ``max_runs``."""

    min_runs: int = 3
    max_runs: int = 100
    horizon: datetime.timedelta = datetime.timedelta(hours=1)


def scheduled_key(when: datetime.datetime) -> str:
    """The idempotency key of the run for the scheduled instant ``when``."""
    return "scheduled:" + when.astimezone(_UTC).isoformat()


@functools.cache
def _schedule_adapter() -> TypeAdapter[Schedule]:
    return TypeAdapter(Schedule)


@dataclasses.dataclass(frozen=True)
class Slot:
    """A scheduled instant and the index of the first active schedule naming it."""

    when: datetime.datetime
    schedule: int


def slots(
    schedules: Sequence[orm.DeploymentSchedule],
    start: datetime.datetime,
    end: datetime.datetime,
    limit: int,
) -> list[Slot]:
    """The first ``limit`` instants in ``[start, end)`` of the active schedules, each once."""
    found: dict[datetime.datetime, int] = {}
    for index, row in enumerate(schedules):
        if not row.active:
            continue
        schedule = _schedule_adapter().validate_python(row.schedule)
        for when in schedule.occurrences(start, end, limit):
            found.setdefault(when, index)
    return [Slot(when, found[when]) for when in sorted(found)[:limit]]


def _upcoming(
    view: DeploymentView,
    now: datetime.datetime,
    lookahead: Lookahead,
    count: int,
    last: datetime.datetime | None,
) -> list[Slot]:
    """The slots to make, given ``count`` future runs already made, the latest at ``last``."""
    room = lookahead.max_runs - count
    if room <= 0:
        return []
    # Runs up to ``last`` exist: start after it, so each pass only adds at the far end.
    start = max(now, last + _TICK) if last is not None else now
    within = slots(view.schedules, start, now + lookahead.horizon, room)
    short = lookahead.min_runs - count
    if len(within) < short:  # few runs in the horizon: the next ``short``, however far
        return slots(view.schedules, start, _FOREVER, short)
    return within


def _insert(session: Session, template: RunTemplate, when: datetime.datetime, auto: bool) -> bool:
    values, state = template.values(when, key=scheduled_key(when), auto_scheduled=auto)
    return flow_runs.insert_flow_run_rows(session, values, state)


def _templates(session: Session, view: DeploymentView, indexes: set[int]) -> dict[int, RunTemplate]:
    """The run template of each of these schedules (by index), validated once."""
    return {
        index: run_template(
            session,
            view,
            view.schedules[index].parameters,
            {},
            where=f"schedules[{index}].parameters",
        )
        for index in sorted(indexes)
    }


# -- the scheduler ----------------------------------------------------------------------
def deployments_needing_runs(
    session: Session,
    now: datetime.datetime,
    lookahead: Lookahead,
    after: uuid.UUID | None,
    limit: int,
) -> list[tuple[uuid.UUID, int, datetime.datetime | None]]:
    """Up to ``limit`` active deployments, by id after ``after``, with active schedules and
    too few future runs: ``(id, how many, the latest's time)``. Deployments another
    transaction holds (being edited, or scheduled by another server) are skipped."""
    run = orm.FlowRun
    future = and_(
        run.deployment_id == orm.Deployment.id,
        run.state_type == StateType.SCHEDULED.value,
        run.auto_scheduled.is_(True),
        run.expected_start_time >= now,
    )
    count = select(func.count()).where(future).correlate(orm.Deployment).scalar_subquery()
    last = (
        select(func.max(run.expected_start_time))
        .where(future)
        .correlate(orm.Deployment)
        .scalar_subquery()
    )
    schedule = orm.DeploymentSchedule
    active = exists().where(schedule.deployment_id == orm.Deployment.id, schedule.active.is_(True))
    query = (
        select(orm.Deployment.id, count, last)
        .where(orm.Deployment.paused.is_(False), active)
        .where(
            or_(
                count < lookahead.min_runs,
                and_(
                    count < lookahead.max_runs,
                    or_(last.is_(None), last < now + lookahead.horizon),
                ),
            )
        )
        .order_by(orm.Deployment.id)
        .limit(limit)
        .with_for_update(of=orm.Deployment, skip_locked=True)
    )
    if after is not None:
        query = query.where(orm.Deployment.id > after)
    return [(row[0], int(row[1]), row[2]) for row in session.execute(query).all()]


def schedule_runs(
    session: Session,
    now: datetime.datetime,
    lookahead: Lookahead,
    after: uuid.UUID | None,
    limit: int,
) -> tuple[int, uuid.UUID | None]:
    """Make the missing future runs of up to ``limit`` deployments after ``after``;
    ``(runs made, the last deployment looked at)``, None for it when no more are left."""
    found = deployments_needing_runs(session, now, lookahead, after, limit)
    if not found:
        return 0, None
    futures = {deployment_id: (count, last) for deployment_id, count, last in found}
    made = 0
    for view in read_deployments(session, list(futures)):
        made += _schedule_one(session, view, now, lookahead, *futures[view.deployment.id])
    return made, found[-1][0] if len(found) == limit else None


def _schedule_one(
    session: Session,
    view: DeploymentView,
    now: datetime.datetime,
    lookahead: Lookahead,
    count: int,
    last: datetime.datetime | None,
) -> int:
    upcoming = _upcoming(view, now, lookahead, count, last)
    try:
        templates = _templates(session, view, {slot.schedule for slot in upcoming})
    except Invalid as exc:
        # Deploying checks the same, so only data changed behind the API gets here: say
        # which deployment, and carry on with the others.
        name = f"{view.flow_name}/{view.deployment.name}"
        logger.warning("Deployment %s makes no scheduled runs: %s", name, exc.message)
        return 0
    return sum(_insert(session, templates[slot.schedule], slot.when, True) for slot in upcoming)


# -- backfill ---------------------------------------------------------------------------
def backfill(
    session: Session, deployment_id: uuid.UUID, data: DeploymentBackfill
) -> tuple[int, int]:
    """A run for every scheduled time in ``[start, end)`` that has none; ``(created,
    skipped)``. Not ``auto_scheduled``: edits to the deployment never delete them."""
    view = existing_deployment(session, deployment_id)
    found = slots(view.schedules, data.start, data.end, data.max_runs + 1)
    if len(found) > data.max_runs:
        raise Invalid(
            f"max_runs: [start, end) holds more than {data.max_runs} scheduled times; "
            f"narrow the window or raise max_runs (at most {MAX_BACKFILL_RUNS})."
        )
    templates = _templates(session, view, {slot.schedule for slot in found})
    created = sum(_insert(session, templates[slot.schedule], slot.when, False) for slot in found)
    return created, len(found) - created
