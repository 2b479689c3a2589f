"""``examples/run_all.py`` (the in-process part of ``make run``): every example flow runs
to Completed, writing only under CONVEYOR_HOME."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_FLOWS = (
    "hello",
    "etl",
    "report",
    "primes-on-sequential",
    "primes-on-threads",
    "primes-on-processes",
    "primes-on-dask",
)


def test_run_all_completes_every_example(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(CONVEYOR_HOME=str(home), COLUMNS="200", PYTHONIOENCODING="utf-8")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "run_all.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = re.search(r"(\d+)/(\d+) example flows completed", proc.stdout)
    assert summary is not None, proc.stdout
    assert summary[1] == summary[2]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == int(summary[2])
    for name in EXAMPLE_FLOWS:
        (found,) = [r for r in rows if r.split("│")[1].strip() == name]
        assert "Completed" in found, found
    # The ETL example persisted its reports in the result store under CONVEYOR_HOME.
    assert (home / "storage" / "etl" / "revenue-2024-05-01").is_file()
