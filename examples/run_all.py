"""Run every example flow in this process and print a table of final states.

The demo (``make run``) runs this against its server, next to the deployments' runs.

Exits with status 1 if any example flow did not complete.
"""

from __future__ import annotations

import sys
import time
from typing import Any, cast

import etl
import hello
import parallel
import report
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from conveyor import Flow, State


def example_flows() -> list[Flow[..., Any]]:
    """Every example flow, each run with its default parameters."""
    return [hello.hello, etl.etl, report.report, *parallel.on_each_runner()]


def run(flow: Flow[..., Any]) -> tuple[str, bool, float]:
    """Run one flow; returns (final state as text, completed?, seconds)."""
    started = time.perf_counter()
    try:
        # Every example flow is sync, so this is a State, not an awaitable.
        state = cast(State, flow(return_state=True))
    except Exception as exc:  # noqa: BLE001 - one broken example must not hide the others
        return f"raised {type(exc).__name__}: {exc}", False, time.perf_counter() - started
    return repr(state), state.is_completed(), time.perf_counter() - started


def main() -> int:
    table = Table(title="Conveyor examples")
    table.add_column("Flow", no_wrap=True)
    table.add_column("Final state", overflow="fold")
    table.add_column("Duration", justify="right")
    flows = example_flows()
    completed = 0
    for flow in flows:
        shown, ok, seconds = run(flow)
        completed += ok
        color = "green" if ok else "red"
        table.add_row(flow.name, f"[{color}]{escape(shown)}[/{color}]", f"{seconds:.2f}s")
    console = Console()
    console.print(table)
    console.print(f"{completed}/{len(flows)} example flows completed.")
    return 0 if completed == len(flows) else 1


if __name__ == "__main__":
    sys.exit(main())
