"""``conveyor flow-run resume``: one clear error line and exit 1 for anything it cannot do.

Resuming a paused run for real, with input, is tested end to end in
tests/server/test_pauses_end_to_end.py (SQLite and PostgreSQL) and tests/engine."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

CONVEYOR = str(Path(sys.executable).parent / "conveyor")


def _resume(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["CONVEYOR_HOME"] = str(home)
    return subprocess.run(
        [CONVEYOR, "flow-run", "resume", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("not-an-id",), "Error: 'not-an-id' is not a flow run id"),
        ((str(uuid.UUID(int=1)), "--input", "{nope"), "Error: --input is not JSON"),
        ((str(uuid.UUID(int=1)), "--input", '"text"'), "Error: --input must be a JSON object"),
        ((str(uuid.UUID(int=1)),), f"Error: No flow run with id {uuid.UUID(int=1)}. (HTTP 404)"),
    ],
)
def test_bad_requests_are_one_line_and_exit_1(
    tmp_path: Path, args: tuple[str, ...], error: str
) -> None:
    result = _resume(tmp_path / "home", *args)
    assert result.returncode == 1
    assert result.stderr.startswith(error), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
