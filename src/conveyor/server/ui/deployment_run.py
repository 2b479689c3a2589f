"""Starting a deployment's run from the browser: the form, its checks, the new run."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from conveyor.schemas.deployments import DeploymentFlowRunCreate
from conveyor.server.api.claims import claim_waiters
from conveyor.server.models import deployments
from conveyor.server.models.deployments import DeploymentView
from conveyor.server.models.errors import Invalid, NotFound
from conveyor.server.ui import run_form, templating
from conveyor.server.ui.common import cross_site, database, forbidden, not_found, parse_id
from conveyor.server.ui.flow_runs import with_notice
from conveyor.server.ui.forms import read_form

router = APIRouter()


def _missing(deployment_id: str) -> Response:
    return not_found(f"There is no deployment with id {deployment_id}. It may have been deleted.")


def _form_page(
    view: DeploymentView, shown: list[run_form.Field], message: str | None, status: int
) -> Response:
    return templating.page(
        "run_form.html",
        status_code=status,
        title=f"Run {view.flow_name}/{view.deployment.name}",
        view=view,
        fields=shown,
        message=message,
    )


@router.get("/deployments/{deployment_id}/run")
async def run_form_page(request: Request, deployment_id: str) -> Response:
    parsed = parse_id(deployment_id)
    view = await database(request).read(deployments.read_deployment, parsed) if parsed else None
    if view is None:
        return _missing(deployment_id)
    d = view.deployment
    return _form_page(view, run_form.fields(d.parameter_schema, d.parameters), None, 200)


def _create(session: Session, deployment_id: uuid.UUID, parameters: dict[str, Any]) -> uuid.UUID:
    data = DeploymentFlowRunCreate(parameters=parameters)
    run, _, _ = deployments.create_deployment_flow_run(session, deployment_id, data)
    return run.id


@router.post("/deployments/{deployment_id}/run")
async def start_run(request: Request, deployment_id: str) -> Response:
    """Check the form; a good one makes a run due now, for the pool's workers."""
    if cross_site(request):
        return forbidden()
    parsed = parse_id(deployment_id)
    view = await database(request).read(deployments.read_deployment, parsed) if parsed else None
    if parsed is None or view is None:
        return _missing(deployment_id)
    d = view.deployment
    submitted = run_form.read(d.parameter_schema, d.parameters, await read_form(request))
    if submitted.parameters is None:
        message = " ".join(["Some parameters need fixing; see below.", *submitted.problems])
        return _form_page(view, submitted.fields, message, 422)
    try:
        run_id = await database(request).write(_create, parsed, submitted.parameters)
    except (Invalid, NotFound) as exc:
        return _form_page(view, submitted.fields, exc.message, 422)
    claim_waiters(request).notify()  # workers waiting on the pool look at once
    notice = "Run scheduled: a worker of its pool starts it shortly."
    if view.work_pool_name is None:
        notice = "Run scheduled: the process serving this deployment starts it shortly."
    return RedirectResponse(with_notice(f"/flow-runs/{run_id}", notice), status_code=303)
