"""One flow run's page: its state and history, why it failed, its timeline of task runs
and child runs, its logs (filtered, searched, tailed live), parameters, results and
artifacts, and the buttons that cancel, retry or resume it (see ``resume``)."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import urllib.parse
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from conveyor.schemas.api import ArtifactFilter, OrchestrationStatus
from conveyor.schemas.states import TERMINAL_STATE_TYPES, StateType
from conveyor.server.api.claims import claim_waiters
from conveyor.server.database import orm
from conveyor.server.models import artifacts, deployments, flow_runs, run_details
from conveyor.server.orchestration.policy import (
    FlowRunNotFound,
    ResumeRefused,
    RunInputInvalid,
    resume_flow_run,
)
from conveyor.server.ui import artifacts as artifact_views
from conveyor.server.ui import gantt, resume, run_form, templating
from conveyor.server.ui.common import cross_site, database, forbidden, not_found, parse_id
from conveyor.server.ui.flow_runs import ACTIONS, with_notice
from conveyor.server.ui.forms import read_form

router = APIRouter()

TIMELINE_TASKS = 500
TIMELINE_CHILDREN = 200
ARTIFACTS_LIMIT = 50
LOG_LINES = 200
# A finished run's page keeps refreshing this long, for records that arrive late.
SETTLE_SECONDS = 15.0
LEVELS = {"": 0, "DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
_FAILED = frozenset({StateType.FAILED.value, StateType.CRASHED.value})
_FINISHED = frozenset(t.value for t in TERMINAL_STATE_TYPES)


@dataclasses.dataclass(frozen=True)
class LogQuery:
    level: str = ""
    text: str = ""

    @classmethod
    def from_request(cls, request: Request) -> LogQuery:
        level = request.query_params.get("level", "").upper()
        text = request.query_params.get("q", "").strip()[:200]
        return cls(level if level in LEVELS else "", text)

    @property
    def level_ge(self) -> int:
        return LEVELS[self.level]

    def query(self, **extra: str | int) -> str:
        values = {"level": self.level, "q": self.text, **extra}
        return urllib.parse.urlencode({k: v for k, v in values.items() if v != ""})


@dataclasses.dataclass(frozen=True)
class RunView:
    run: orm.FlowRun
    flow_name: str | None
    deployment_name: str | None
    states: Sequence[orm.FlowRunState]
    timeline: gantt.Timeline
    artifacts: list[artifact_views.ArtifactView]
    traceback: str | None
    live: bool

    @property
    def current(self) -> orm.FlowRunState | None:
        return self.states[-1] if self.states else None

    @property
    def failed(self) -> bool:
        return self.run.state_type in _FAILED

    @property
    def result_refs(self) -> list[tuple[orm.FlowRunState, dict[str, object]]]:
        return [(s, s.result_ref) for s in self.states if s.result_ref]

    @property
    def can_cancel(self) -> bool:
        return self.run.state_type not in _FINISHED and self.run.state_type != "CANCELLING"

    @property
    def can_retry(self) -> bool:
        return self.run.state_type in _FINISHED and self.run.deployment_id is not None


def _is_live(run: orm.FlowRun, children: Sequence[orm.FlowRun], now: datetime.datetime) -> bool:
    if run.state_type not in _FINISHED or any(c.state_type not in _FINISHED for c in children):
        return True
    ended = run.end_time or run.updated
    if ended.tzinfo is None:
        ended = ended.replace(tzinfo=datetime.timezone.utc)
    return (now - ended).total_seconds() < SETTLE_SECONDS


def _read(session: Session, run_id: uuid.UUID, now: datetime.datetime) -> RunView | None:
    run = flow_runs.read_flow_run(session, run_id)
    if run is None:
        return None
    deployment = (
        deployments.read_deployment(session, run.deployment_id) if run.deployment_id else None
    )
    tasks = run_details.task_runs_of(session, run_id, TIMELINE_TASKS + 1)
    children = run_details.child_runs_of(session, run_id, TIMELINE_CHILDREN + 1)
    truncated = len(tasks) > TIMELINE_TASKS or len(children) > TIMELINE_CHILDREN
    found = artifacts.filter_artifacts(
        session, ArtifactFilter(flow_run_id=run_id, limit=ARTIFACTS_LIMIT)
    )
    failed = run.state_type in _FAILED
    return RunView(
        run=run,
        flow_name=flow_runs.flow_name_of(session, run),
        deployment_name=f"{deployment.flow_name}/{deployment.deployment.name}"
        if deployment
        else None,
        states=flow_runs.read_states(session, run_id),
        timeline=gantt.timeline(
            run, tasks[:TIMELINE_TASKS], children[:TIMELINE_CHILDREN], now, truncated=truncated
        ),
        artifacts=[artifact_views.view(a) for a in found],
        traceback=run_details.failure_traceback(session, run_id) if failed else None,
        live=_is_live(run, children, now),
    )


async def _summary(request: Request, run_id: uuid.UUID) -> tuple[RunView, Markup] | None:
    now = datetime.datetime.now(datetime.timezone.utc)
    view = await database(request).read(_read, run_id, now)
    if view is None:
        return None
    fragment = templating.live(
        "flow_run_live.html",
        f"/fragments/flow-runs/{run_id}",
        poll=view.live,
        element_id="run-live",
        view=view,
        now=now,
    )
    return view, fragment


def _missing(run_id: str) -> Response:
    return not_found(f"There is no flow run with id {run_id}. It may have been deleted.")


@router.get("/flow-runs/{run_id}")
async def flow_run_page(request: Request, run_id: str) -> Response:
    parsed = parse_id(run_id)
    found = await _summary(request, parsed) if parsed else None
    if parsed is None or found is None:
        return _missing(run_id)
    view, _ = found
    panel = resume.panel(parsed, _pause(view), poll=view.live)
    return await _page(request, parsed, found, panel)


def _pause(view: RunView) -> resume.Pause | None:
    current = view.current
    if current is None or view.run.state_type != StateType.PAUSED.value:
        return None
    return resume.pause_of(view.run.id, flow_runs.state_from_row(current))


async def _page(
    request: Request,
    run_id: uuid.UUID,
    found: tuple[RunView, Markup],
    resume_panel: Markup,
    status_code: int = 200,
) -> HTMLResponse:
    view, summary = found
    logs = LogQuery.from_request(request)
    lines = await database(request).read(
        run_details.newest_logs, run_id, logs.level_ge, logs.text or None, LOG_LINES
    )
    return templating.page(
        "flow_run.html",
        status_code=status_code,
        title=f"Flow run {view.run.name}",
        view=view,
        summary=summary,
        resume_panel=resume_panel,
        log_query=logs,
        log_lines=_log_tail(run_id, lines, logs, view.live, after=lines[-1].id if lines else 0),
        log_limit=LOG_LINES,
        notice=request.query_params.get("notice", ""),
    )


@router.get("/fragments/flow-runs/{run_id}")
async def flow_run_fragment(request: Request, run_id: str) -> Response:
    parsed = parse_id(run_id)
    found = await _summary(request, parsed) if parsed else None
    if found is None:
        return _missing(run_id)
    return templating.live_response(request, found[1])


def _log_tail(
    run_id: uuid.UUID, lines: Sequence[orm.Log], logs: LogQuery, poll: bool, *, after: int
) -> Markup:
    url = f"/fragments/flow-runs/{run_id}/logs?{logs.query(after=after)}"
    html = (
        templating.environment()
        .get_template("log_lines.html")
        .render(lines=lines, url=url, poll=poll, level_names=_level_name)
    )
    return Markup(html)


def _level_name(level: int) -> str:
    return logging.getLevelName(level) if level in (10, 20, 30, 40, 50) else f"LEVEL {level}"


def _tail(
    session: Session, run_id: uuid.UUID, after: int, logs: LogQuery, now: datetime.datetime
) -> tuple[list[orm.Log], bool]:
    """New lines, and whether to keep asking (the run is not long finished)."""
    lines = run_details.logs_after(
        session, run_id, after, logs.level_ge, logs.text or None, LOG_LINES
    )
    run = flow_runs.read_flow_run(session, run_id)
    return lines, run is not None and _is_live(run, [], now)


@router.get("/fragments/flow-runs/{run_id}/logs")
async def log_tail(request: Request, run_id: str, after: int = 0) -> Response:
    """New lines after ``after``, followed by the poller that asks for the next ones; 204
    when there are none, which leaves the poller in place, until the run has long
    finished: then the poller is replaced by nothing, and the tail stops."""
    parsed = parse_id(run_id)
    if parsed is None:
        return _missing(run_id)
    logs = LogQuery.from_request(request)
    now = datetime.datetime.now(datetime.timezone.utc)
    lines, live = await database(request).read(_tail, parsed, max(after, 0), logs, now)
    if not lines and live:
        return Response(status_code=204)
    last = lines[-1].id if lines else after
    return HTMLResponse(_log_tail(parsed, lines, logs, live, after=last))


@router.get("/fragments/flow-runs/{run_id}/resume")
async def resume_fragment(request: Request, run_id: str) -> Response:
    parsed = parse_id(run_id)
    run, pause = await database(request).read(resume.read_pause, parsed) if parsed else (None, None)
    if parsed is None or run is None:
        return _missing(run_id)
    panel = resume.panel(parsed, pause, poll=run.state_type not in _FINISHED)
    return templating.live_response(request, panel)


@router.post("/flow-runs/{run_id}/resume")
async def resume_run(request: Request, run_id: str) -> Response:
    """Resume a paused run, with the input its pause asked for, through the same function
    as ``POST /api/flow_runs/{id}/resume``. A form that needs fixing comes back on the
    run's page with each message next to its field; anything else, in a notice."""
    if cross_site(request):
        return forbidden()
    parsed = parse_id(run_id)
    run, pause = await database(request).read(resume.read_pause, parsed) if parsed else (None, None)
    if parsed is None or run is None:
        return _missing(run_id)
    back = f"/flow-runs/{parsed}"
    run_input: dict[str, Any] | None = None
    if pause is not None and pause.schema is not None:
        submitted = run_form.read(pause.schema, {}, await read_form(request))
        if submitted.parameters is None:
            found = await _summary(request, parsed)
            if found is None:
                return _missing(run_id)
            message = " ".join(["The input needs fixing; see below.", *submitted.problems])
            panel = resume.panel(
                parsed, pause, poll=found[0].live, submitted=submitted, message=message
            )
            return await _page(request, parsed, found, panel, status_code=422)
        run_input = submitted.parameters
    try:
        result = await database(request).write(resume_flow_run, parsed, run_input)
    except FlowRunNotFound:
        return _missing(run_id)
    except (ResumeRefused, RunInputInvalid) as exc:
        return RedirectResponse(with_notice(back, f"Not resumed: {exc}"), status_code=303)
    if result.state is not None and result.state.is_scheduled():
        claim_waiters(request).notify()  # a suspended run is due again: claim it
        notice = "Run resumed: it is scheduled again, for a worker of its pool to run."
    else:
        notice = "Run resumed: its process carries on."
    return RedirectResponse(with_notice(back, notice), status_code=303)


@router.post("/flow-runs/{run_id}/{action}")
async def run_action(request: Request, run_id: str, action: str) -> Response:
    """Cancel or retry this run; the page comes back saying what happened, in words."""
    if cross_site(request):
        return forbidden()
    parsed = parse_id(run_id)
    if parsed is None or action not in ACTIONS:
        return _missing(run_id)
    past, change = ACTIONS[action]
    try:
        result = await database(request).write(change, parsed)
    except FlowRunNotFound:
        return _missing(run_id)
    if result.status is OrchestrationStatus.ABORT:
        notice = f"Not {past}: {result.reason}"
    else:
        if action == "retry":
            claim_waiters(request).notify()  # due now: workers waiting on the pool look
        state = result.state.name if result.state else "changed"
        notice = f"Run {past}: it is now {state}."
    return RedirectResponse(with_notice(f"/flow-runs/{parsed}", notice), status_code=303)
