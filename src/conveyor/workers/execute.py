"""``python -m conveyor.workers.execute ENTRYPOINT CODE_DIR``: run the flow run a worker
launched, named by ``CONVEYOR_FLOW_RUN_ID``.

Loads the flow from the code (never from the server), reads the run's parameters, waits
for its scheduled time if the worker started it early, and runs it as that run. Exit
code 0 when the run completed (or suspended itself), 1 otherwise; an error before the run
starts leaves a traceback on stderr, which the worker puts in the Crashed state it then
records.
"""

from __future__ import annotations

import datetime
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ENV_VAR = "CONVEYOR_FLOW_RUN_ID"


def main(argv: list[str], flow_run: dict[str, Any] | None = None) -> int:
    """Run the flow run; ``flow_run`` is the run as the worker claimed it (JSON), which
    saves reading it from the server (the fork server passes it)."""
    if len(argv) != 2 or not os.environ.get(ENV_VAR):
        print(
            f"usage: {ENV_VAR}=ID python -m conveyor.workers.execute ENTRYPOINT CODE_DIR",
            file=sys.stderr,
        )
        return 2
    # Taken out of the environment: processes the flow starts are not this run.
    flow_run_id = uuid.UUID(os.environ.pop(ENV_VAR))
    entrypoint, code_dir = argv

    from conveyor.deployments.entrypoints import load_flow
    from conveyor.engine import runtime
    from conveyor.engine.concurrency import transport_of
    from conveyor.engine.flow_engine import run_existing_flow_run
    from conveyor.schemas.api import FlowRunRead

    flow = load_flow(entrypoint, Path(code_dir))
    transport = transport_of(runtime.get_recorder())
    if transport is None:
        print("No Conveyor backend to run the flow run against.", file=sys.stderr)
        return 2
    if flow_run is not None and flow_run.get("id") == str(flow_run_id):
        run = FlowRunRead.model_validate(flow_run)
    else:
        run = transport.call(lambda client: client.read_flow_run(flow_run_id))
    if run.expected_start_time is not None:
        early = run.expected_start_time - datetime.datetime.now(datetime.timezone.utc)
        time.sleep(max(early.total_seconds(), 0))
    state = run_existing_flow_run(flow, flow_run_id, run.parameters, name=run.name)
    suspended = state is not None and state.is_paused()  # suspend_flow_run: ends on purpose
    return 0 if state is not None and (state.is_completed() or suspended) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
