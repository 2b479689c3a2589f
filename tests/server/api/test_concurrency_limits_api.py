"""Concurrency limits: the contract of /api/concurrency_limits and leases, on every backend."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

pytestmark = pytest.mark.anyio


async def _create(client: httpx.AsyncClient, name: str, limit: int) -> dict[str, object]:
    response = await client.post("/concurrency_limits/", json={"name": name, "limit": limit})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def _acquire(
    client: httpx.AsyncClient, name: str, timeout: float = 0.0, **extra: object
) -> httpx.Response:
    body = {"slots": 1, "timeout_seconds": timeout, **extra}
    return await client.post(f"/concurrency_limits/{name}/acquire", json=body)


async def test_create_list_update_delete(client: httpx.AsyncClient) -> None:
    created = await _create(client, "db", 2)
    assert created["name"] == "db"
    assert created["limit"] == 2
    assert created["active_slots"] == 0
    await _create(client, "api", 5)

    listed = (await client.get("/concurrency_limits/")).json()
    assert [row["name"] for row in listed] == ["api", "db"]

    updated = await _create(client, "db", 3)
    assert updated["id"] == created["id"]
    assert updated["limit"] == 3
    assert (await client.get("/concurrency_limits/db")).json()["limit"] == 3

    assert (await client.delete("/concurrency_limits/db")).status_code == 204
    assert (await client.get("/concurrency_limits/db")).status_code == 404
    assert (await client.delete("/concurrency_limits/db")).status_code == 404


async def test_bad_input_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/concurrency_limits/", json={"name": "x", "limit": -1})
    assert response.status_code == 422
    assert "limit" in response.text
    assert (await _acquire(client, "missing")).status_code == 404
    await _create(client, "small", 1)
    refused = await client.post("/concurrency_limits/small/acquire", json={"slots": 2})
    assert refused.status_code == 409
    too_long = await _acquire(client, "small", timeout=61)
    assert too_long.status_code == 422


async def test_acquire_until_full_then_423_after_the_timeout(client: httpx.AsyncClient) -> None:
    await _create(client, "db", 2)
    first = await _acquire(client, "db", holder="run-1")
    assert first.status_code == 200, first.text
    assert first.json()["holder"] == "run-1"
    assert (await _acquire(client, "db")).status_code == 200
    assert (await client.get("/concurrency_limits/db")).json()["active_slots"] == 2

    started = time.monotonic()
    full = await _acquire(client, "db", timeout=0.3)
    assert full.status_code == 423
    assert "no slot free within timeout" in full.text
    assert time.monotonic() - started >= 0.3


async def test_release_wakes_a_waiting_acquire_promptly(client: httpx.AsyncClient) -> None:
    await _create(client, "db", 1)
    lease = (await _acquire(client, "db")).json()

    waiter = asyncio.create_task(_acquire(client, "db", timeout=10))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    released_at = time.monotonic()
    assert (await client.delete(f"/concurrency_leases/{lease['id']}")).status_code == 204
    response = await waiter
    assert response.status_code == 200
    assert time.monotonic() - released_at < 1.0
    assert (await client.delete(f"/concurrency_leases/{lease['id']}")).status_code == 404


async def test_reset_frees_every_slot(client: httpx.AsyncClient) -> None:
    await _create(client, "db", 1)
    assert (await _acquire(client, "db")).status_code == 200
    waiter = asyncio.create_task(_acquire(client, "db", timeout=10))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    assert (await client.post("/concurrency_limits/db/reset")).status_code == 204
    assert (await waiter).status_code == 200
    assert time.monotonic() - started < 1.0


async def test_expired_leases_do_not_count_and_cannot_be_renewed(
    client: httpx.AsyncClient,
) -> None:
    await _create(client, "db", 1)
    lease = (await _acquire(client, "db", ttl_seconds=1)).json()
    assert (await _acquire(client, "db")).status_code == 423
    await asyncio.sleep(1.3)
    assert (await client.get("/concurrency_limits/db")).json()["active_slots"] == 0
    renewed = await client.post(f"/concurrency_leases/{lease['id']}/renew", json={})
    assert renewed.status_code == 404
    assert (await _acquire(client, "db")).status_code == 200


async def test_renewing_keeps_the_slot(client: httpx.AsyncClient) -> None:
    await _create(client, "db", 1)
    lease = (await _acquire(client, "db", ttl_seconds=1)).json()
    renewed = await client.post(
        f"/concurrency_leases/{lease['id']}/renew", json={"ttl_seconds": 60}
    )
    assert renewed.status_code == 200
    assert renewed.json()["expires"] > lease["expires"]
    await asyncio.sleep(1.2)
    assert (await _acquire(client, "db")).status_code == 423
    unknown = await client.post(f"/concurrency_leases/{uuid.uuid4()}/renew", json={})
    assert unknown.status_code == 404


async def test_concurrent_acquires_grant_exactly_the_limit(client: httpx.AsyncClient) -> None:
    await _create(client, "db", 3)
    responses = await asyncio.gather(*(_acquire(client, "db") for _ in range(10)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 3 + [423] * 7
    assert (await client.get("/concurrency_limits/db")).json()["active_slots"] == 3


async def test_deleting_a_limit_drops_its_leases(client: httpx.AsyncClient) -> None:
    await _create(client, "db", 1)
    lease = (await _acquire(client, "db")).json()
    assert (await client.delete("/concurrency_limits/db")).status_code == 204
    await _create(client, "db", 1)
    assert (await _acquire(client, "db")).status_code == 200
    assert (await client.delete(f"/concurrency_leases/{lease['id']}")).status_code == 404
