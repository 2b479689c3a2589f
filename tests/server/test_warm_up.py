"""A server started with ``warm_up`` has loaded, before its first request, what request
handlers would otherwise load then."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import asyncio, json, sys
from pathlib import Path
import httpx
from conveyor.server.app import create_app
from conveyor.server.warm_up import LAZY_MODULES
from conveyor.settings import Settings

async def main() -> None:
    app = create_app(Settings(home=Path(sys.argv[1])), warm_up=sys.argv[2] == "yes")
    async with app.router.lifespan_context(app):
        loaded = [name for name in LAZY_MODULES if name in sys.modules]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t/api") as client:
            status = (await client.get("/health")).status_code
    print(json.dumps({"loaded": loaded, "health": status}))

asyncio.run(main())
"""


def _start(tmp_path: Path, warm: bool) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), "yes" if warm else "no"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_warm_up_loads_the_handlers_lazy_modules_at_start_up(tmp_path: Path) -> None:
    from conveyor.server.warm_up import LAZY_MODULES

    assert _start(tmp_path / "cold", warm=False)["loaded"] != list(LAZY_MODULES)
    warm = _start(tmp_path / "warm", warm=True)
    assert warm == {"loaded": list(LAZY_MODULES), "health": 200}
