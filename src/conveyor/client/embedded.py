"""Clients for the configured backend: a server over HTTP, or the local database embedded.

Embedded mode runs the very same server application inside this process and talks to it
through httpx's ASGI transport: no port, no second process, and not a line of separate
code — what `python my_flow.py` records is exactly what `conveyor server start` serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from conveyor.client.api import ConveyorClient
from conveyor.settings import Settings

T = TypeVar("T")

EMBEDDED_URL = "http://embedded.conveyor/api"


async def connect(settings: Settings) -> ConveyorClient:
    """A client for ``CONVEYOR_API_URL``, or for the embedded local database."""
    if settings.api_url:
        return ConveyorClient(settings.api_url)
    return await embedded_client(settings)


async def embedded_client(settings: Settings) -> ConveyorClient:
    import httpx

    from conveyor.server.app import create_app

    app = create_app(settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()  # opens and migrates the database

    async def shut_down() -> None:
        await lifespan.__aexit__(None, None, None)

    # Embedded calls never cross a network, so there is nothing to retry.
    client = ConveyorClient(EMBEDDED_URL, transport=httpx.ASGITransport(app=app), retries=0)
    client.on_close(shut_down)
    return client


def run_with_client(action: Callable[[ConveyorClient], Awaitable[T]]) -> T:
    """Run ``action`` with a client for the configured backend, from synchronous code."""

    async def run() -> T:
        client = await connect(Settings.from_env())
        try:
            return await action(client)
        finally:
            await client.aclose()

    return asyncio.run(run())
