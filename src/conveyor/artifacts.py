"""Artifacts from inside flows and tasks: markdown, tables, links and progress for people.

Each function publishes one artifact, attached to the current flow run and task run, and
returns its id. With ``CONVEYOR_BACKEND=none`` nothing is recorded and a fresh id is
returned. Artifacts sharing a ``key`` form its history; the newest is its latest version.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import ConveyorError
from conveyor.schemas.api import ArtifactCreate, ArtifactType
from conveyor.settings import Settings

if TYPE_CHECKING:
    from conveyor.client.transport import ApiTransport

__all__ = [
    "create_link_artifact",
    "create_markdown_artifact",
    "create_progress_artifact",
    "create_table_artifact",
]

_lock = threading.Lock()
# For a run whose recorder has no API connection of its own (a custom recorder): one
# transport per process, for the settings it was made with.
_fallback: tuple[Settings, ApiTransport] | None = None


def _fallback_transport(settings: Settings) -> ApiTransport:
    global _fallback
    with _lock:
        if _fallback is None or _fallback[0] is not settings:
            from conveyor.client.transport import ApiTransport

            if _fallback is not None:  # settings changed (use_settings): a new backend
                with contextlib.suppress(ConveyorError, OSError, TimeoutError):
                    _fallback[1].close()  # best effort: the old backend may be gone
            _fallback = (settings, ApiTransport(settings))
        return _fallback[1]


def _run_ids() -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """The current (flow run id, task run id); None outside of a run."""
    from conveyor.engine.context import flow_run_context, task_run_context

    task_ctx = task_run_context.get()
    if task_ctx is not None:
        return task_ctx.environment.flow_run_id, task_ctx.task_run.id
    flow_ctx = flow_run_context.get()
    if flow_ctx is not None:
        return flow_ctx.flow_run.id, None
    return None, None


def _create(type_: ArtifactType, data: Any, key: str | None, description: str | None) -> uuid.UUID:
    from conveyor.engine.runtime import get_settings

    flow_run_id, task_run_id = _run_ids()
    body = ArtifactCreate(
        key=key,
        type=type_,
        description=description,
        data=data,
        flow_run_id=flow_run_id,
        task_run_id=task_run_id,
    )
    settings = get_settings()
    if settings.backend == "none":
        return uuid.uuid4()
    # The run's own connection when it has one: no second client, or second embedded app.
    transport = _run_transport(flow_run_id) or _fallback_transport(settings)
    return transport.call(lambda client: client.create_artifact(body)).id


def _run_transport(flow_run_id: uuid.UUID | None) -> ApiTransport | None:
    """The API transport the current run records through, if it has one here."""
    from conveyor.engine import runtime
    from conveyor.engine.concurrency import transport_of
    from conveyor.engine.context import flow_run_context, task_run_context

    task_ctx = task_run_context.get()
    flow_ctx = flow_run_context.get()
    if task_ctx is not None:
        recorder = task_ctx.recorder
    elif flow_ctx is not None:
        recorder = flow_ctx.recorder
    else:
        recorder = runtime.get_recorder()
    if flow_run_id is not None:
        # The run's own creation may still be queued: the artifact must not arrive first.
        recorder.flush(timeout=30)
    return transport_of(recorder)


def create_markdown_artifact(
    markdown: str, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """Publish a markdown document; returns the artifact's id."""
    return _create(ArtifactType.MARKDOWN, markdown, key, description)


def create_table_artifact(
    table: list[dict[str, Any]] | dict[str, list[Any]],
    key: str | None = None,
    description: str | None = None,
) -> uuid.UUID:
    """Publish a table: a list of row dicts, or ``{"columns": [...], "rows": [[...]]}``."""
    return _create(ArtifactType.TABLE, table, key, description)


def create_link_artifact(
    link: str,
    link_text: str | None = None,
    key: str | None = None,
    description: str | None = None,
) -> uuid.UUID:
    """Publish a link (shown as ``link_text`` when given); returns the artifact's id."""
    return _create(ArtifactType.LINK, {"url": link, "text": link_text}, key, description)


def create_progress_artifact(
    progress: float, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """Publish progress, a number from 0 to 100; returns the artifact's id."""
    return _create(ArtifactType.PROGRESS, progress, key, description)
