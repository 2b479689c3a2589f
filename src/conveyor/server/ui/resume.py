"""Resuming a paused or suspended run from its page: the Resume panel and its form.

When the pause asked for input (``pause_flow_run(wait_for_input=Model)`` stores the
model's JSON schema in the Paused state's details), the panel is a form made from that
schema exactly as a deployment's Run form is made from its parameter schema
(``run_form``), with each bad value named next to its field. Without a schema it is a
plain Resume button. The resume itself is ``orchestration.policy.resume_flow_run``, the
function behind ``POST /api/flow_runs/{id}/resume``.

The panel is a live fragment of its own, outside the run's summary (whose durations
change every second): its fingerprint depends only on the pause, so what a person types
is not swept away by the page's refreshes.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from typing import Any

from markupsafe import Markup
from sqlalchemy.orm import Session

from conveyor.schemas.states import State, StateType
from conveyor.server.database import orm
from conveyor.server.models import flow_runs
from conveyor.server.orchestration.policy import SUSPENDED_STATE_NAME
from conveyor.server.ui import run_form, templating


@dataclasses.dataclass(frozen=True)
class Pause:
    """What the panel needs to know about a paused run's current pause."""

    run_id: uuid.UUID
    suspended: bool
    key: str | None
    deadline: datetime.datetime | None
    schema: dict[str, Any] | None

    def expired(self, now: datetime.datetime) -> bool:
        return self.deadline is not None and self.deadline <= now


def pause_of(run_id: uuid.UUID, state: State | None) -> Pause | None:
    """The pause ``state`` is, or None when it is not a PAUSED state."""
    if state is None or state.type is not StateType.PAUSED:
        return None
    details = state.state_details
    return Pause(
        run_id=run_id,
        suspended=bool(details.pause_reschedule) or state.name == SUSPENDED_STATE_NAME,
        key=details.pause_key,
        deadline=details.pause_timeout,
        schema=details.run_input_schema,
    )


def read_pause(session: Session, run_id: uuid.UUID) -> tuple[orm.FlowRun | None, Pause | None]:
    """The run (None if there is none), and its current pause if it is paused."""
    run = flow_runs.read_flow_run(session, run_id)
    if run is None:
        return None, None
    return run, pause_of(run_id, flow_runs.current_state(session, run))


def panel(
    run_id: uuid.UUID,
    pause: Pause | None,
    *,
    poll: bool,
    submitted: run_form.Submitted | None = None,
    message: str | None = None,
) -> Markup:
    """The Resume panel (empty when the run is not paused), live at its own URL.

    ``submitted`` (a form that needs fixing) is shown with what was typed and its errors,
    under the blank form's version: the next poll keeps it unless the pause changed."""
    now = datetime.datetime.now(datetime.timezone.utc)
    blank = _fields(pause)
    url = f"/fragments/flow-runs/{run_id}/resume"
    context: dict[str, Any] = {"run_id": run_id, "pause": pause, "now": now}
    if submitted is None:
        return templating.live(
            "resume_panel.html",
            url,
            poll=poll,
            element_id="run-resume",
            fields=blank,
            message=None,
            **context,
        )
    version = templating.version_of("resume_panel.html", fields=blank, message=None, **context)
    return templating.live(
        "resume_panel.html",
        url,
        poll=poll,
        element_id="run-resume",
        version=version,
        fields=submitted.fields,
        message=message,
        **context,
    )


def _fields(pause: Pause | None) -> list[run_form.Field]:
    if pause is None or pause.schema is None:
        return []
    return run_form.fields(pause.schema, {})
