"""The deployments page: each deployment's schedules, next runs and pool, with pause and
resume."""

from __future__ import annotations

import dataclasses
import datetime
import uuid

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from conveyor.schemas.deployments import DeploymentFilter, DeploymentUpdate
from conveyor.server.database import orm
from conveyor.server.models import deployment_runs, deployments
from conveyor.server.models.deployments import DeploymentView
from conveyor.server.models.errors import NotFound
from conveyor.server.ui import templating
from conveyor.server.ui.common import cross_site, database, forbidden, not_found, parse_id
from conveyor.server.ui.flow_runs import with_notice

router = APIRouter()

PAGE_SIZE = 50
NEXT_RUNS = 3


@dataclasses.dataclass(frozen=True)
class Listing:
    views: list[DeploymentView]
    next_runs: dict[uuid.UUID, list[orm.FlowRun]]
    has_next: bool


def _read(session: Session, page: int, now: datetime.datetime) -> Listing:
    flt = DeploymentFilter(limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    views = deployments.filter_deployments(session, flt)
    shown = views[:PAGE_SIZE]
    ids = [v.deployment.id for v in shown]
    return Listing(
        shown, deployment_runs.next_runs(session, ids, now, NEXT_RUNS), len(views) > PAGE_SIZE
    )


@router.get("/deployments")
async def deployments_page(request: Request, page: int = 1) -> Response:
    page = min(max(page, 1), 10_000)
    now = datetime.datetime.now(datetime.timezone.utc)
    listing = await database(request).read(_read, page, now)
    return templating.page(
        "deployments.html",
        title="Deployments",
        listing=listing,
        page_number=page,
        now=now,
        notice=request.query_params.get("notice", ""),
    )


@router.post("/deployments/{deployment_id}/{action}")
async def pause_or_resume(request: Request, deployment_id: str, action: str) -> Response:
    """Pause (no new scheduled runs, none claimed) or resume a deployment."""
    if cross_site(request):
        return forbidden()
    parsed = parse_id(deployment_id)
    if parsed is None or action not in ("pause", "resume"):
        return not_found(f"There is no deployment with id {deployment_id}.")
    change = DeploymentUpdate(paused=action == "pause")
    try:
        view = await database(request).write(deployments.update_deployment, parsed, change)
    except NotFound:
        return not_found(
            f"There is no deployment with id {deployment_id}. It may have been deleted."
        )
    name = f"{view.flow_name}/{view.deployment.name}"
    notice = (
        f"Paused {name}: its schedules make no runs and workers claim none of its runs."
        if action == "pause"
        else f"Resumed {name}: its schedules make runs again."
    )
    return RedirectResponse(with_notice("/deployments", notice), status_code=303)
