"""The catalogue pages: flows, concurrency limits, variables, artifacts."""

from __future__ import annotations

import httpx
import pytest
from tests.server.ui.ui_app import Seed

pytestmark = pytest.mark.anyio


async def test_empty_catalogues_say_how_to_fill_them(ui: httpx.AsyncClient) -> None:
    for path, hint in [
        ("/flows", "No flows yet"),
        ("/concurrency-limits", "conveyor concurrency-limit create"),
        ("/variables", "conveyor variable set"),
        ("/artifacts", "No artifacts"),
    ]:
        response = await ui.get(path)
        assert response.status_code == 200 and hint in response.text, path


async def test_flows_show_their_newest_run(ui: httpx.AsyncClient, seed: Seed) -> None:
    await seed.run(flow="etl", name="older", state="COMPLETED")
    await seed.run(flow="etl", name="newer", state="FAILED")
    html = (await ui.get("/flows")).text
    assert "/flow-runs?flow=etl" in html and "newer" in html and "older" not in html


async def test_limits_show_slots_in_use(
    ui: httpx.AsyncClient, api: httpx.AsyncClient, seed: Seed
) -> None:
    await seed.post("/concurrency_limits/", {"name": "database", "limit": 2})
    response = await api.post("/concurrency_limits/database/acquire", json={"slots": 1})
    assert response.status_code == 200, response.text
    html = (await ui.get("/concurrency-limits")).text
    assert "database" in html and "1 of 2" in html


async def test_variables_and_artifacts_are_listed(
    ui: httpx.AsyncClient, api: httpx.AsyncClient, seed: Seed
) -> None:
    response = await api.put("/variables/region", json={"value": {"name": "eu-west"}})
    assert response.status_code == 200, response.text
    assert "eu-west" in (await ui.get("/variables")).text
    run_id = await seed.run(state="COMPLETED")
    await seed.artifact(run_id, "table", [{"city": "Oslo"}, {"city": "Rome"}], key="cities")
    html = (await ui.get("/artifacts")).text
    assert "cities" in html and "1 column, 2 rows" in html and f"/flow-runs/{run_id}" in html


async def test_catalogues_page_through_many_rows(ui: httpx.AsyncClient, seed: Seed) -> None:
    for i in range(51):
        await seed.run(flow=f"flow-{i:02d}", name=f"run-{i}")
    first = (await ui.get("/flows")).text
    assert "flow-49" in first and "flow-50" not in first and "Next →" in first
    second = (await ui.get("/flows?page=2")).text
    assert "flow-50" in second and "Next →" not in second
