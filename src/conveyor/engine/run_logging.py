"""Run loggers: records that carry run ids, a console format, and shipping to the recorder.

``get_run_logger()`` returns a logger whose records name the current flow run and task
run. A handler on the ``conveyor`` logger ships every record that carries a run id to the
run's recorder (batched, like task-run states). ``log_prints=True`` turns ``print()``
calls inside a run into INFO records.
"""

from __future__ import annotations

import builtins
import datetime
import logging
import sys
import threading
import uuid
from collections.abc import MutableMapping
from typing import Any

from conveyor.engine.context import _log_prints, flow_run_context, task_run_context
from conveyor.exceptions import NotInFlowError
from conveyor.schemas.logs import LogRecordCreate

_configured = False
_configure_lock = threading.Lock()
_original_print = builtins.print


class RunLoggerAdapter(logging.LoggerAdapter[logging.Logger]):
    """Adds run ids to every record while keeping the caller's own ``extra``."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


def run_log_extra(
    flow_run_id: uuid.UUID | None,
    flow_run_name: str | None,
    task_run_id: uuid.UUID | None = None,
    task_run_name: str | None = None,
) -> dict[str, Any]:
    """The ``extra`` that ties a log record to its run: for the console and the recorder."""
    return {
        "flow_run_id": flow_run_id,
        "flow_run_name": flow_run_name,
        "task_run_id": task_run_id,
        "task_run_name": task_run_name,
    }


def get_run_logger() -> logging.LoggerAdapter[logging.Logger]:
    """A logger for the current task run (inside a task) or flow run (inside a flow)."""
    task_ctx = task_run_context.get()
    if task_ctx is not None:
        env = task_ctx.environment
        return RunLoggerAdapter(
            logging.getLogger("conveyor.task_runs"),
            run_log_extra(
                env.flow_run_id, env.flow_run_name, task_ctx.task_run.id, task_ctx.task_run.name
            ),
        )
    flow_ctx = flow_run_context.get()
    if flow_ctx is not None:
        return RunLoggerAdapter(
            logging.getLogger("conveyor.flow_runs"),
            run_log_extra(flow_ctx.flow_run.id, flow_ctx.flow_run.name),
        )
    raise NotInFlowError(
        "get_run_logger() was called outside of a flow or task run; "
        "use logging.getLogger(__name__) there instead."
    )


class RunRecordHandler(logging.Handler):
    """Ships records that carry a flow-run or task-run id to the current run's recorder."""

    def emit(self, record: logging.LogRecord) -> None:
        flow_run_id = getattr(record, "flow_run_id", None)
        task_run_id = getattr(record, "task_run_id", None)
        if flow_run_id is None and task_run_id is None:
            return
        task_ctx = task_run_context.get()
        if task_ctx is not None:
            recorder = task_ctx.recorder
        else:
            flow_ctx = flow_run_context.get()
            if flow_ctx is not None:
                recorder = flow_ctx.recorder
            else:
                # The engine's own records from outside the run's context ("Beginning
                # flow run", retries, "Finished in state") go to the process recorder,
                # which is the one a top-level flow run records to.
                from conveyor.engine import runtime

                recorder = runtime.get_recorder()
        if not recorder.enabled:
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
            recorder.emit(
                LogRecordCreate(
                    name=record.name,
                    level=record.levelno,
                    message=message,
                    timestamp=datetime.datetime.fromtimestamp(
                        record.created, datetime.timezone.utc
                    ),
                    flow_run_id=flow_run_id,
                    task_run_id=task_run_id,
                )
            )
        except Exception:  # noqa: BLE001 - logging must never break the run it describes
            self.handleError(record)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        task_run_name = getattr(record, "task_run_name", None)
        flow_run_name = getattr(record, "flow_run_name", None)
        if task_run_name:
            record.run = f"Task run {task_run_name!r} - "
        elif flow_run_name:
            record.run = f"Flow run {flow_run_name!r} - "
        else:
            record.run = ""
        return super().format(record)


def configure_logging(level: str) -> None:
    """Install the console and recorder handlers on the ``conveyor`` logger, once."""
    global _configured
    if _configured:
        return
    with _configure_lock:
        if _configured:
            return
        logger = logging.getLogger("conveyor")
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.DEBUG if level == "DEBUG" else logging.INFO)
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(level)
        console.setFormatter(
            ConsoleFormatter(
                "%(asctime)s.%(msecs)03d | %(levelname)-7s | %(run)s%(message)s", "%H:%M:%S"
            )
        )
        logger.addHandler(console)
        logger.addHandler(RunRecordHandler())
        logger.propagate = False
        builtins.print = _print
        _configured = True


def _print(
    *args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
) -> None:
    """``print`` that becomes an INFO record inside runs with ``log_prints=True``."""
    if _log_prints.get() and (file is None or file is sys.stdout):
        try:
            logger = get_run_logger()
        except NotInFlowError:
            pass
        else:
            text = (sep if sep is not None else " ").join(str(a) for a in args)
            logger.info(text, extra={"print": True})
            return
    _original_print(*args, sep=sep, end=end, file=file, flush=flush)
