"""The flow runs list: filters, pages, and cancelling or retrying many runs at once."""

from __future__ import annotations

import dataclasses
import datetime
import urllib.parse
import uuid
from collections.abc import Callable

from fastapi import APIRouter
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from conveyor.schemas.api import FlowRunFilter, OrchestrationResult, OrchestrationStatus
from conveyor.schemas.deployments import DeploymentFilter
from conveyor.schemas.states import StateType
from conveyor.server.api.claims import claim_waiters
from conveyor.server.models import deployments, flow_runs, flows
from conveyor.server.orchestration.policy import FlowRunNotFound, cancel_flow_run
from conveyor.server.orchestration.retry import retry_flow_run
from conveyor.server.ui import templating
from conveyor.server.ui.common import cross_site, database, forbidden, parse_id
from conveyor.server.ui.forms import first, read_form

router = APIRouter()

PAGE_SIZE = 50
CHOICES_LIMIT = 200  # flows and deployments offered in the filters
MAX_BULK = 200
TIME_RANGES = {
    "1h": datetime.timedelta(hours=1),
    "24h": datetime.timedelta(hours=24),
    "7d": datetime.timedelta(days=7),
    "30d": datetime.timedelta(days=30),
}


@dataclasses.dataclass(frozen=True)
class Filters:
    """The list's filters, as the query string carries them."""

    state: str = ""
    flow: str = ""
    deployment: str = ""
    tag: str = ""
    range: str = ""
    page: int = 1

    @classmethod
    def from_request(cls, request: Request) -> Filters:
        q = request.query_params
        state = q.get("state", "")
        page = q.get("page", "1")
        return cls(
            state=state if state in StateType.__members__ else "",
            flow=q.get("flow", "").strip(),
            deployment=q.get("deployment", "") if parse_id(q.get("deployment", "")) else "",
            tag=q.get("tag", "").strip(),
            range=q.get("range", "") if q.get("range", "") in TIME_RANGES else "",
            page=max(int(page), 1) if page.isdigit() and len(page) < 6 else 1,
        )

    def query(self, **changes: str | int) -> str:
        values = {**dataclasses.asdict(self), **changes}
        return urllib.parse.urlencode({k: v for k, v in values.items() if v not in ("", 1)})

    def model(self, now: datetime.datetime) -> FlowRunFilter:
        deployment = parse_id(self.deployment)
        return FlowRunFilter(
            state_type=[StateType(self.state)] if self.state else None,
            flow_name=[self.flow] if self.flow else None,
            deployment_id=[deployment] if deployment else None,
            tags_all=[self.tag] if self.tag else None,
            created_after=now - TIME_RANGES[self.range] if self.range else None,
            limit=PAGE_SIZE + 1,  # one more than shown: is there a next page?
            offset=(self.page - 1) * PAGE_SIZE,
        )


def _choices(session: Session) -> tuple[list[str], list[tuple[uuid.UUID, str]]]:
    flow_names = [f.name for f in flows.list_flows(session, CHOICES_LIMIT, 0)]
    views = deployments.filter_deployments(session, DeploymentFilter(limit=CHOICES_LIMIT))
    named = [(v.deployment.id, f"{v.flow_name}/{v.deployment.name}") for v in views]
    return sorted(flow_names), named


async def _table(request: Request, filters: Filters) -> Markup:
    now = datetime.datetime.now(datetime.timezone.utc)
    rows = await database(request).read(flow_runs.filter_flow_runs, filters.model(now))
    return templating.live(
        "flow_runs_table.html",
        f"/fragments/flow-runs?{filters.query()}",
        element_id="runs-live",
        runs=rows[:PAGE_SIZE],
        has_next=len(rows) > PAGE_SIZE,
        filters=filters,
    )


@router.get("/flow-runs")
async def flow_runs_page(request: Request) -> Response:
    filters = Filters.from_request(request)
    flow_names, deployment_choices = await database(request).read(_choices)
    return templating.page(
        "flow_runs.html",
        title="Flow runs",
        table=await _table(request, filters),
        filters=filters,
        states=[s.value for s in StateType],
        flow_names=flow_names,
        deployments=deployment_choices,
        ranges=list(TIME_RANGES),
        notice=request.query_params.get("notice", ""),
    )


@router.get("/fragments/flow-runs")
async def flow_runs_fragment(request: Request) -> Response:
    return templating.live_response(request, await _table(request, Filters.from_request(request)))


ACTIONS: dict[str, tuple[str, Callable[..., OrchestrationResult]]] = {
    "cancel": ("cancelled", cancel_flow_run),
    "retry": ("retried", retry_flow_run),
}


def _apply(session: Session, action: str, ids: list[uuid.UUID]) -> tuple[int, list[str]]:
    """Each run in its own savepoint; returns how many were changed and why others were not."""
    _, change = ACTIONS[action]
    done, refused = 0, []
    for run_id in ids:
        try:
            with session.begin_nested():
                result = change(session, run_id)
        except FlowRunNotFound:
            refused.append(f"No flow run with id {run_id} (deleted meanwhile?).")
            continue
        if result.status is OrchestrationStatus.ABORT:
            refused.append(result.reason or "refused")
        else:
            done += 1
    return done, refused


def local_path(target: str, default: str) -> str:
    """``target`` if it is a path on this site (never a redirect elsewhere)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def with_notice(path: str, notice: str) -> str:
    separator = "&" if "?" in path else "?"
    return f"{path}{separator}{urllib.parse.urlencode({'notice': notice})}"


def describe(action: str, done: int, refused: list[str]) -> str:
    past, _ = ACTIONS[action]
    text = f"{done} run{'s' if done != 1 else ''} {past}."
    if refused:
        shown = " ".join(refused[:3])
        more = f" (and {len(refused) - 3} more)" if len(refused) > 3 else ""
        text += f" {len(refused)} not {past}: {shown}{more}"
    return text


@router.post("/flow-runs/bulk")
async def bulk_action(request: Request) -> Response:
    if cross_site(request):
        return forbidden()
    form = await read_form(request)
    back = local_path(first(form, "back"), "/flow-runs")
    action = first(form, "action")
    ids = [i for i in (parse_id(v) for v in form.get("ids", [])) if i is not None][:MAX_BULK]
    if action not in ACTIONS:
        return RedirectResponse(with_notice(back, "Choose Cancel or Retry."), status_code=303)
    if not ids:
        notice = "No runs were selected: tick the boxes of the runs first."
        return RedirectResponse(with_notice(back, notice), status_code=303)
    done, refused = await database(request).write(_apply, action, ids)
    if action == "retry" and done:
        claim_waiters(request).notify()  # due now: workers waiting on the pool look
    return RedirectResponse(with_notice(back, describe(action, done, refused)), status_code=303)
